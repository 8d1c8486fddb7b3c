"""Calibration and held-out crops from one's own pictures: a folder of images or a video, unlabelled.

INT8 is best calibrated on what the engine will see (its camera, light and crowds), and neither
step needs annotations: calibration reads activations, and the held-out check compares each
artifact's keypoints with the PyTorch model's. People are found as ``predict`` finds them (a
detector ONNX, a COCO-format detections file, or OpenCV's HOG, with its score threshold and box
rules) and cropped by the same geometry as every other crop. Images (a video: sampled frames) go
to the held-out set, then the calibration set, whole, in a seeded order (``ImageSplit``), as a
dataset's do. A folder is read in that order until both sets are full, so a large folder costs
only the images used; a video is sampled at ``VIDEO_SAMPLES`` frames spread over its length
(neighbouring frames repeat each other), decoded in one pass.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.data.files import read_image
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, normalize_crops, warp_crops
from hrnext_trt.errors import HrnextError
from hrnext_trt.export.calibration import SEED, CropSets, ImageSplit
from hrnext_trt.export.config import OWN_IMAGES
from hrnext_trt.predict.boxes import DET_SCORE_THR
from hrnext_trt.predict.boxes_file import open_boxes_file
from hrnext_trt.predict.estimator import detect_people, open_detector
from hrnext_trt.predict.hog import HogPersonDetector
from hrnext_trt.predict.sources import IMAGE_SUFFIXES
from hrnext_trt.progress import progress_bar

log = logging.getLogger(__name__)

VIDEO_SAMPLES = 240  # frames of a video looked at, spread evenly over it


def own_crop_sets(path: Path, input_size: tuple[int, int], calib_images: int, verify_images: int,
                  detector: Path | None = None, boxes: Path | None = None) -> CropSets:
    """Held-out crops first (``verify_images``), then up to ``calib_images`` calibration crops, of
    the people in the images of folder ``path`` or the frames of video ``path``; people from
    ``detector`` (an ONNX), ``boxes`` (a detections file) or, with neither, OpenCV's HOG."""
    path = Path(path)
    pictures = _Folder(path) if path.is_dir() else _Video(path)
    people = _PeopleFinder(pictures.box_keys, detector, boxes)
    input_size = (int(input_size[0]), int(input_size[1]))

    def crops_of(image: np.ndarray, key, name: str) -> np.ndarray:
        centers, scales = box_to_center_scale(people(image, key, name).xywh(), input_size)
        return warp_crops(image, affine_matrix(centers, scales, 0.0, input_size), input_size)

    split = ImageSplit(verify_images, calib_images)
    sets = {"heldout": [], "calibration": []}
    seen, empty, unreadable = 0, 0, []
    for key, name, crops in pictures.crops(crops_of):
        if split.full:
            break
        seen += 1
        if crops is None:
            unreadable.append(name)
        elif not len(crops):
            empty += 1
        else:
            sets[split.add(key, len(crops))].append(crops)
    what = f"{seen} {pictures.unit}s of {path} ({people.name})"
    if not split.heldout:
        raise HrnextError(f"found no person in the {what}: pass --calib-detector DET.onnx or --calib-boxes "
                          "DETS.json, or other pictures")
    if calib_images and not split.calibration:
        raise HrnextError(f"the {what} hold {split.heldout_crops} people, and the {verify_images} held-out crops "
                          f"took them all, leaving none to calibrate on (the two never share {_a(pictures.unit)}): "
                          "pass more pictures, a detector that finds more people (--calib-detector), or fewer "
                          "--verify-images")
    heldout = _normalized(sets["heldout"], input_size)[:verify_images]
    calibration = _normalized(sets["calibration"], input_size)[:calib_images]
    source = {
        "dataset": OWN_IMAGES,
        "root": str(path),
        "split": None,
        "people_from": people.name,
        "calibration_crops": len(calibration),
        "calibration_images": len(split.calibration),
        "heldout_crops": len(heldout),
        "heldout_images": len(split.heldout),
        "requested_calibration_crops": calib_images,
        f"{pictures.unit}s_looked_at": seen,
        f"{pictures.unit}s_without_people": empty,
        "unreadable": unreadable,
    }
    return CropSets(calibration, heldout, source)


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _normalized(crops: list[np.ndarray], input_size: tuple[int, int]) -> np.ndarray:
    if not crops:
        return np.empty((0, 3, *input_size), dtype=np.float32)
    return normalize_crops(np.concatenate(crops))


def _order(count: int) -> list[int]:
    return np.random.default_rng(SEED).permutation(count).tolist()  # the same pictures on every export


class _Folder:
    """A folder's images, read and cropped one at a time in the split's order: a large folder costs
    only the images the two sets take."""

    unit = "image"

    def __init__(self, path: Path):
        self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise HrnextError(f"calibration folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}): pass a "
                              "folder of pictures or a video file")
        stems = [p.stem for p in self.files]
        # A detections file names an image by its numeric stem (COCO, CrowdPose) or its file name.
        numeric = all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems)
        self.ids = [int(s) for s in stems] if numeric else list(range(len(stems)))
        self.box_keys = [p.name for p in self.files] + self.ids

    def crops(self, crops_of):
        """(key, file name, uint8 crops or None where the file is unreadable), in the split's order."""
        with progress_bar(total=len(self.files), desc="calibration images", unit="image") as bar:
            for i in _order(len(self.files)):
                bar.update(1)
                try:
                    image = read_image(self.files[i])
                except HrnextError as exc:  # one bad file in a folder must not end the export
                    log.warning("skipped: %s", exc)
                    yield self.ids[i], self.files[i].name, None
                    continue
                yield self.ids[i], self.files[i].name, crops_of(image, self.ids[i], self.files[i].name)


class _Video:
    """``VIDEO_SAMPLES`` frames of a video spread over its length, cropped in one decoding pass
    (a frame's crops, not the frame, are kept), then handed out in the split's order."""

    unit = "frame"

    def __init__(self, path: Path):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise HrnextError(f"{path} is one image, and calibration splits pictures into held-out and calibration "
                              "ones: pass a folder of images or a video")
        self.path = path
        capture = self._open()
        self.total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        capture.release()
        # The frames looked at (a count the container does not give: the first ones).
        wanted = np.linspace(0, self.total - 1, min(self.total, VIDEO_SAMPLES)) if self.total > 0 else \
            np.arange(VIDEO_SAMPLES)
        self.box_keys = np.unique(wanted.round().astype(int)).tolist()  # frame indices

    def _open(self):
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise HrnextError(f"cannot open video {self.path}: not a video OpenCV can decode (or not a video); pass a "
                              "folder of images or a video file")
        return capture

    def crops(self, crops_of):
        """(frame index, "frame N", uint8 crops), in the split's order."""
        wanted, found = set(self.box_keys), {}
        last = max(wanted)
        capture = self._open()
        try:
            with progress_bar(total=len(wanted), desc=f"calibration frames of {self.path.name}", unit="frame") as bar:
                index = 0
                while index <= last and capture.grab():  # grab() passes over frames not sampled
                    if index in wanted:
                        ok, frame = capture.retrieve()
                        if ok and frame is not None:
                            found[index] = crops_of(frame, index, f"frame {index}")
                        bar.update(1)
                    index += 1
        finally:
            capture.release()
        if not found:
            raise HrnextError(f"video {self.path} gives no frame: the file is empty or corrupt")
        indices = sorted(found)
        for i in _order(len(indices)):
            yield indices[i], f"frame {indices[i]}", found[indices[i]]


class _PeopleFinder:
    """Person boxes of an image: from the detections file, else the detector (HOG by default)."""

    def __init__(self, box_keys, detector: Path | None, boxes: Path | None):
        self.boxes_file = open_boxes_file(boxes, DET_SCORE_THR, box_keys) if boxes is not None else None
        self.detector = None if boxes is not None else \
            open_detector(detector) or HogPersonDetector(DET_SCORE_THR)
        self.name = (self.boxes_file or self.detector).name

    def __call__(self, image: np.ndarray, key, name: str):
        if self.boxes_file is not None:
            return self.boxes_file.boxes_for(key, name).clipped(image.shape[1], image.shape[0])
        return detect_people(self.detector, image, DET_SCORE_THR)
