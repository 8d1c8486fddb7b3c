"""The people found in one image (``FramePoses``: what ``PoseEstimator`` returns and ``predict``
writes) and their drawing: skeletons, boxes, track ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hrnext_trt.keypoints import KeypointMeta
from hrnext_trt.predict.tracking import track_color
from hrnext_trt.visualize import draw_poses


@dataclass
class FramePoses:
    """The people of one frame: ``boxes`` x1, y1, x2, y2 (N, 4), ``box_scores`` (N,), ``keypoints``
    (N, J, 3) x, y in image pixels and the joint's score (all float32); ``scores`` (N,) float64, the
    instance score (box score x mean joint score above 0.2); ``track_ids`` (N,) int64 on a video's
    frames, else None; ``box_rows`` (N,) int64: the row of each person's box among the boxes its
    crops were made of (OKS-NMS drops a detector's duplicates; given boxes keep every row; by
    default each row in order). N may be 0; the dtypes stay."""

    boxes: np.ndarray
    box_scores: np.ndarray
    track_ids: np.ndarray | None
    keypoints: np.ndarray
    scores: np.ndarray
    box_rows: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.box_rows is None:  # poses made by hand: one per box, in order
            self.box_rows = np.arange(len(self.scores), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> "FramePoses":
        """The people ``keep`` (indices or a mask), in that order."""
        return FramePoses(self.boxes[keep], self.box_scores[keep],
                          None if self.track_ids is None else self.track_ids[keep], self.keypoints[keep],
                          self.scores[keep], self.box_rows[keep])

    def people(self) -> list[dict]:
        """JSON-ready dicts, one per person, as ``predict`` writes them: ``bbox`` COCO's [x, y, w, h]
        (``boxes`` holds x1, y1, x2, y2), ``box_score``, ``keypoints`` COCO's flat [x1, y1, s1, ...],
        ``score``, and ``track_id`` on a video's frames; rounded to 0.01 px and 5 decimals."""
        out = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            person = {"bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                      "box_score": round(float(self.box_scores[i]), 5),
                      "keypoints": [round(float(v), 2 if k % 3 < 2 else 5)
                                    for k, v in enumerate(self.keypoints[i].reshape(-1))],
                      "score": round(float(self.scores[i]), 5)}
            if self.track_ids is not None:
                person = {"track_id": int(self.track_ids[i]), **person}
            out.append(person)
        return out


def annotate(frame: np.ndarray, poses: FramePoses, meta: KeypointMeta, kpt_thr: float,
             fps_text: str | None = None) -> np.ndarray:
    """Skeletons (left orange, right blue), each person's box and track id in the track's colour."""
    canvas = draw_poses(frame, poses.keypoints, meta, kpt_thr)
    thickness = max(1, round(max(canvas.shape[:2]) / 600))
    font_scale = max(canvas.shape[:2]) / 1600 + 0.3
    for i in range(len(poses)):
        x1, y1, x2, y2 = (int(round(v)) for v in poses.boxes[i])
        track = None if poses.track_ids is None else int(poses.track_ids[i])
        color = track_color(track) if track is not None else (200, 200, 200)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        label = f"#{track} {poses.scores[i]:.2f}" if track is not None else f"{poses.scores[i]:.2f}"
        cv2.putText(canvas, label, (x1 + 2, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, color,
                    thickness, cv2.LINE_AA)
    if fps_text:
        cv2.putText(canvas, fps_text, (8, 8 + round(24 * font_scale)), cv2.FONT_HERSHEY_SIMPLEX, font_scale * 1.3,
                    (0, 255, 255), thickness + 1, cv2.LINE_AA)
    return canvas
