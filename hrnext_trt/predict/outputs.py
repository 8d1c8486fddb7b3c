"""What ``predict`` writes: annotated pictures or an annotated video, the results, a summary.

- images: ``<out>/<file name>`` annotated, ``<out>/results.json`` (COCO keypoint results, one
  entry per person, plus ``bbox``, ``box_score`` and ``file_name``);
- video / camera / sequence (a folder of a video's frames): ``<out>/<name>.mp4`` (MPEG-4 ``mp4v``:
  the H.264 encoder is not in OpenCV's pip wheels) and ``<out>/<name>.jsonl``, one line per frame:
  ``{"frame", "time_s", "people": [{"track_id", "bbox", "box_score", "keypoints", "score"}]}``, where
  a sequence's lines also name the frame's ``file_name`` and ``image_id`` (as ``results.json``
  does) and ``frame`` is the file's position in the sorted folder;
- ``<out>/summary.json``: the run's settings, counts, per-stage timing, the files written,
  ``skipped_unreadable`` (a folder's images that could not be read, skipped) and ``error`` (null,
  or why the run stopped).

Keypoints are COCO's flat ``[x1, y1, s1, x2, ...]`` in image pixels, boxes ``[x, y, w, h]``.
Every file is complete when the run stops, also after Ctrl-C or an error: the video is finalised,
the JSON lines end at a whole frame, ``results.json`` is written whole with the frames done, and
the summary says whether the run was interrupted or failed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta
from hrnext_trt.predict.tracking import track_color
from hrnext_trt.reports import claim_output_folder
from hrnext_trt.visualize import draw_poses

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
RESULTS_NAME = "results.json"


@dataclass
class FramePoses:
    """The people of one frame: boxes xyxy (N, 4), box scores (N,), track ids (N,) or None,
    keypoints (N, J, 3) in image pixels with scores, instance scores (N,)."""

    boxes: np.ndarray
    box_scores: np.ndarray
    track_ids: np.ndarray | None
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def people(self) -> list[dict]:
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


def prepare_out_dir(out: Path, source: Path | None, overwrite: bool) -> None:
    """Create ``out``; refuse a folder with files in it (never mix runs) unless ``overwrite``, which
    removes only the files a previous run listed in its summary."""
    out = Path(out)
    if source is not None and source.is_dir() and out.resolve() == source.resolve():
        raise HrnextError(f"--out {out} is the source folder: the annotated images would replace the inputs; "
                          "choose another folder")
    if source is not None and source.is_file() and out.resolve() == source.resolve().parent:
        # Also with --overwrite: the annotated picture (or video) takes the input's own name.
        raise HrnextError(f"--out {out} is the folder of the source {source.name}: the annotated output would "
                          "replace or mix with it; choose another folder")
    claim_output_folder(out, SUMMARY_NAME, overwrite, "predict")


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


class ImagesOutput:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.results: list[dict] = []
        self.files: list[str] = []

    def write(self, frame, poses: FramePoses, canvas: np.ndarray) -> None:
        name = frame.name if Path(frame.name).suffix.lower() in (".jpg", ".jpeg", ".png") else frame.name + ".jpg"
        path = self.out / name
        if not cv2.imwrite(str(path), canvas):
            raise HrnextError(f"cannot write {path}: check that the folder is writable")
        self.files.append(name)
        for person in poses.people():
            self.results.append({"image_id": frame.image_id, "category_id": 1, "file_name": frame.name, **person})

    def close(self) -> list[str]:
        _write_json_atomic(self.out / RESULTS_NAME, self.results)
        return [RESULTS_NAME, *self.files]


class VideoOutput:
    """The annotated video and its JSON lines. A frame of another size than the first (possible in a
    folder of frames) is scaled to the video's size, as a video writer drops such frames silently;
    its keypoints stay in its own pixels."""

    def __init__(self, out: Path, name: str, fps: float, size_wh: tuple[int, int], named_frames: bool = False):
        self.out = Path(out)
        self.video_name, self.lines_name = f"{name}.mp4", f"{name}.jsonl"
        self.fps, self.size_wh, self.named_frames = fps, size_wh, named_frames
        self.rescaled: list[str] = []  # frames drawn at another size and scaled into the video
        self._writer = cv2.VideoWriter(str(self.out / self.video_name), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
        if not self._writer.isOpened():
            raise HrnextError(f"OpenCV cannot write {self.out / self.video_name} (mp4v): check the folder is "
                              "writable and OpenCV was built with FFmpeg")
        self._lines = open(self.out / self.lines_name, "w", encoding="utf-8")
        self.frames = 0

    def write(self, frame, poses: FramePoses, canvas: np.ndarray) -> None:
        if (canvas.shape[1], canvas.shape[0]) != self.size_wh:
            if not self.rescaled:
                log.warning("%s is %dx%d, the video %dx%d (its first frame's): drawn scaled to that size; its "
                            "keypoints stay in its own pixels", frame.name, canvas.shape[1], canvas.shape[0],
                            *self.size_wh)
            self.rescaled.append(frame.name)
            canvas = cv2.resize(canvas, self.size_wh, interpolation=cv2.INTER_AREA)
        self._writer.write(canvas)
        record = {"frame": frame.index, "time_s": round(frame.index / self.fps, 4)}
        if self.named_frames:
            record.update(file_name=frame.name, image_id=frame.image_id)
        record["people"] = poses.people()
        self._lines.write(json.dumps(record) + "\n")  # one write per frame: the file ends at a whole line
        self.frames += 1

    def close(self) -> list[str]:
        self._writer.release()  # finalises the mp4 (its index), also after Ctrl-C
        self._lines.close()
        return [self.video_name, self.lines_name]


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_summary(out: Path, summary: dict) -> Path:
    path = Path(out) / SUMMARY_NAME
    _write_json_atomic(path, summary)
    return path
