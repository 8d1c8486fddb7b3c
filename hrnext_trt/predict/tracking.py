"""Track ids across video frames: greedy IoU matching of each detection round's people (the poses
OKS-NMS kept, see ``video.VideoPoses.finish``) to the live tracks.

Between detection rounds (``--detect-every N``) the boxes of the last round are carried over
unchanged, so a person keeps its id and its box; a track may find no match for up to
``max_missed`` consecutive rounds (a person briefly hidden keeps the id) and ends at one more,
and its id is never reused.
"""

from __future__ import annotations

import colorsys

import numpy as np

from hrnext_trt.predict.boxes import Boxes, iou_matrix


class IouTracker:
    def __init__(self, iou_thr: float = 0.3, max_missed: int = 3):
        self.iou_thr, self.max_missed = float(iou_thr), int(max_missed)
        self._boxes = np.zeros((0, 4), dtype=np.float32)
        self._ids: list[int] = []
        self._missed: list[int] = []
        self._next_id = 1

    def rescale(self, sx: float, sy: float) -> None:
        """The live tracks' boxes in the pixels of a frame of another size (the same scene scaled)."""
        self._boxes = (self._boxes * np.float32([sx, sy, sx, sy])).astype(np.float32)

    def update(self, boxes: Boxes) -> np.ndarray:
        """Track ids (N,) of a detection round's boxes, best IoU pairs matched first."""
        ids = np.zeros(len(boxes), dtype=np.int64)
        iou = iou_matrix(boxes.xyxy, self._boxes)
        matched_tracks = set()
        if iou.size:
            for d, t in zip(*np.unravel_index(np.argsort(-iou, axis=None, kind="stable"), iou.shape)):
                if iou[d, t] < self.iou_thr:
                    break
                if ids[d] or t in matched_tracks:
                    continue
                ids[d] = self._ids[t]
                matched_tracks.add(t)
        live = [t for t in range(len(self._ids)) if t not in matched_tracks and self._missed[t] + 1 <= self.max_missed]
        kept_boxes = [self._boxes[t] for t in live]
        kept_ids = [self._ids[t] for t in live]
        kept_missed = [self._missed[t] + 1 for t in live]
        for d in range(len(boxes)):
            if not ids[d]:
                ids[d] = self._next_id
                self._next_id += 1
        self._boxes = np.concatenate([boxes.xyxy, np.reshape(kept_boxes, (-1, 4))]).astype(np.float32)
        self._ids = ids.tolist() + kept_ids
        self._missed = [0] * len(boxes) + kept_missed
        return ids


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per id (golden-ratio hue steps)."""
    hue = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)
