"""What ``predict`` writes: annotated pictures or an annotated video, the results, a summary.

- images: ``<out>/<file name>`` annotated, ``<out>/results.json`` (COCO keypoint results, one
  entry per person, plus ``bbox``, ``box_score`` and ``file_name``);
- video / camera / sequence (a folder of a video's frames): ``<out>/<name>.mp4`` (MPEG-4 ``mp4v``:
  the H.264 encoder is not in OpenCV's pip wheels) and ``<out>/<name>.jsonl``, one line per frame:
  ``{"frame", "time_s", "people": [{"track_id", "bbox", "box_score", "keypoints", "score"}]}``, where
  a sequence's lines also name the frame's ``file_name`` and ``image_id`` (as ``results.json``
  does) and ``frame`` is the file's position in the sorted folder; ``time_s`` is the frame's time in
  the written video;
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
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.errors import HrnextError, write_error
from hrnext_trt.folder_lock import FolderLock
from hrnext_trt.predict.poses import FramePoses
from hrnext_trt.reports import claim_output_folder, write_atomic

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
RESULTS_NAME = "results.json"


def prepare_out_dir(out: Path, source: Path | None, overwrite: bool) -> FolderLock:
    """Create and lock ``out``; refuse a folder with files in it (never mix runs) unless ``overwrite``
    and they are a previous run's (listed in its summary): those are removed. The lock is the
    caller's to release when the run's files are written."""
    out = Path(out)
    if source is not None and source.is_dir() and out.resolve() == source.resolve():
        raise HrnextError(f"--out {out} is the source folder: the annotated images would replace the inputs; "
                          "choose another folder")
    # Also with --overwrite: the annotated picture (or video) takes the input's own name, in the
    # folder a link to it sits in as much as in the folder of the file it points to.
    if source is not None and source.is_file() and \
            out.resolve() in (source.resolve().parent, source.absolute().parent.resolve()):
        raise HrnextError(f"--out {out} is the folder of the source {source.name}: the annotated output would "
                          "replace or mix with it; choose another folder")
    return claim_output_folder(out, SUMMARY_NAME, overwrite, "predict")


class ImagesOutput:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.results: list[dict] = []
        self.files: list[str] = []

    def write(self, frame, poses: FramePoses, canvas: np.ndarray) -> None:
        name = frame.name if Path(frame.name).suffix.lower() in (".jpg", ".jpeg", ".png") else frame.name + ".jpg"
        ok, encoded = cv2.imencode(Path(name).suffix, canvas)
        if not ok:
            raise HrnextError(f"OpenCV cannot encode {name} ({Path(name).suffix})")
        write_atomic(self.out / name, encoded.tobytes())  # the reason in one line: a full disk, permissions
        self.files.append(name)
        for person in poses.people():
            self.results.append({"image_id": frame.image_id, "category_id": 1, "file_name": frame.name, **person})

    def close(self) -> None:
        write_atomic(self.out / RESULTS_NAME, (json.dumps(self.results) + "\n").encode("utf-8"))
        self.results_written = True

    results_written = False

    def names(self) -> list[str]:
        """The files written so far (after a failure too: the summary lists them for --overwrite)."""
        return [RESULTS_NAME] * self.results_written + self.files


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
        # time_s: where the frame is in the written video (a sequence's unreadable files are not in it).
        record = {"frame": frame.index, "time_s": round(self.frames / self.fps, 4)}
        if self.named_frames:
            record.update(file_name=frame.name, image_id=frame.image_id)
        record["people"] = poses.people()
        try:
            self._lines.write(json.dumps(record) + "\n")  # one write per frame: the file ends at a whole line
            self._lines.flush()  # a full disk shows here, not in a traceback at close
        except OSError as exc:
            raise HrnextError(write_error(self.out / self.lines_name, exc, "another --out")) from None
        self.frames += 1

    def close(self) -> None:
        self._writer.release()  # finalises the mp4 (its index), also after Ctrl-C
        try:
            self._lines.close()
        except OSError as exc:
            raise HrnextError(write_error(self.out / self.lines_name, exc, "another --out")) from None

    def names(self) -> list[str]:
        return [self.video_name, self.lines_name]


def write_summary(out: Path, summary: dict) -> Path:
    return write_atomic(Path(out) / SUMMARY_NAME, (json.dumps(summary) + "\n").encode("utf-8"))
