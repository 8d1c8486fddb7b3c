"""One's own pictures, unlabelled: a folder of images or a video, and the people in them.

What INT8 calibration on one's own pictures (``export/own_images.py``) and ``trt-eval`` on them
(agreement with PyTorch, no labels) read. A folder gives its images; a video ``VIDEO_SAMPLES``
frames spread evenly over its whole length (neighbouring frames repeat each other), decoded in
one pass with only the sampled frames' results kept. People come as ``predict`` finds them: a
COCO-format detections file, a detector ONNX, or OpenCV's HOG (``PeopleFinder``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.data.files import read_image
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, warp_crops
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import DET_SCORE_THR, Boxes
from hrnext_trt.predict.boxes_file import open_boxes_file
from hrnext_trt.predict.estimator import detect_people, open_detector
from hrnext_trt.predict.hog import HogPersonDetector
from hrnext_trt.predict.sources import IMAGE_SUFFIXES, folder_images, image_ids, open_capture
from hrnext_trt.progress import progress_bar

log = logging.getLogger(__name__)

VIDEO_SAMPLES = 240  # frames of a video looked at, spread evenly over it
_VIDEO_HINT = "; pass a folder of images or a video file"


def open_pictures(path: str | Path, purpose: str) -> "Folder | Video":
    """The pictures at ``path``: a folder of images or a video file. ``purpose`` says in an error
    why one image is not enough (e.g. "calibration splits pictures into held-out and calibration ones")."""
    path = Path(path)
    if path.is_dir():
        return Folder(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise HrnextError(f"{path} is one image, and {purpose}: pass a folder of images or a video")
    return Video(path)


def _order(count: int, seed: int | None) -> list[int]:
    return list(range(count)) if seed is None else np.random.default_rng(seed).permutation(count).tolist()


class Folder:
    """A folder's images, read one at a time (a consumer that stops early reads no more)."""

    unit = "image"

    def __init__(self, path: Path):
        self.path = path
        self.files = folder_images(path)
        self.ids = image_ids(self.files)
        self.box_keys = [p.name for p in self.files] + self.ids

    def __len__(self) -> int:
        return len(self.files)

    def each(self, fn: Callable[[np.ndarray, int, str], object], seed: int | None = None) -> Iterator[tuple]:
        """(id, file name, ``fn(image, id, name)``, or None where the file is unreadable), in
        name order or, with ``seed``, a seeded order."""
        with progress_bar(total=len(self.files), desc=f"pictures in {self.path.name}", unit="image") as bar:
            for i in _order(len(self.files), seed):
                bar.update(1)
                try:
                    image = read_image(self.files[i])
                except HrnextError as exc:  # one bad file must not cost the others
                    log.warning("skipped: %s", exc)
                    yield self.ids[i], self.files[i].name, None
                    continue
                yield self.ids[i], self.files[i].name, fn(image, self.ids[i], self.files[i].name)


class Video:
    """``VIDEO_SAMPLES`` frames of a video spread over its length; ``fn`` runs on each in one
    decoding pass, and its results (not the frames) are handed out afterwards."""

    unit = "frame"

    def __init__(self, path: Path):
        self.path = path
        capture = open_capture(str(path), _VIDEO_HINT)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        capture.release()
        # Where the container gives no frame count: its first frames.
        wanted = np.linspace(0, total - 1, min(total, VIDEO_SAMPLES)) if total > 0 else np.arange(VIDEO_SAMPLES)
        self.box_keys = np.unique(wanted.round().astype(int)).tolist()  # frame indices

    def __len__(self) -> int:
        return len(self.box_keys)

    def each(self, fn: Callable[[np.ndarray, int, str], object], seed: int | None = None) -> Iterator[tuple]:
        """(frame index, "frame N", ``fn(frame, index, name)``), in frame order or, with ``seed``, a seeded order."""
        wanted, results = set(self.box_keys), {}
        last = max(wanted)
        capture = open_capture(str(self.path), _VIDEO_HINT)
        try:
            with progress_bar(total=len(wanted), desc=f"frames of {self.path.name}", unit="frame") as bar:
                index = 0
                while index <= last and capture.grab():  # grab() passes over the frames not sampled
                    if index in wanted:
                        ok, frame = capture.retrieve()
                        if ok and frame is not None:
                            results[index] = fn(frame, index, f"frame {index}")
                        bar.update(1)
                    index += 1
        finally:
            capture.release()
        if not results:
            raise HrnextError(f"video {self.path} gives no frame: the file is empty or corrupt")
        if len(results) < len(wanted):
            log.warning("video %s gave %d of the %d frames sampled over the length its header states: the file "
                        "is truncated or damaged; the frames it gave are used", self.path, len(results), len(wanted))
        indices = sorted(results)
        for i in _order(len(indices), seed):
            yield indices[i], f"frame {indices[i]}", results[indices[i]]


class PeopleFinder:
    """Person boxes of a picture: from a detections file, else a detector ONNX (``det_family``: its
    preprocessing, as predict's --det-family), else OpenCV's HOG; boxes scored below ``DET_SCORE_THR``
    dropped, the rest cut to the picture."""

    def __init__(self, pictures: Folder | Video, detector: Path | None = None, boxes: Path | None = None,
                 det_family: str | None = None):
        if detector is not None and boxes is not None:
            raise HrnextError("pass a detector or a detections file, not both")
        self.boxes_file = open_boxes_file(boxes, DET_SCORE_THR, pictures.box_keys) if boxes is not None else None
        self.detector = None if boxes is not None else \
            open_detector(detector, det_family=det_family) or HogPersonDetector(DET_SCORE_THR)
        self.name = (self.boxes_file or self.detector).name

    def __call__(self, image: np.ndarray, key, name: str) -> Boxes:
        if self.boxes_file is not None:
            return self.boxes_file.boxes_for(key, name, image.shape)
        return detect_people(self.detector, image, DET_SCORE_THR)

    def crops(self, image: np.ndarray, key, name: str, input_size: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """uint8 crops (N, H, W, 3), centers and scales (N, 2) of the picture's people."""
        centers, scales = box_to_center_scale(self(image, key, name).xywh(), input_size)
        return warp_crops(image, affine_matrix(centers, scales, 0.0, input_size), input_size), centers, scales
