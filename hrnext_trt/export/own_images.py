"""Calibration and held-out crops from one's own pictures: a folder of images or a video, unlabelled.

INT8 is best calibrated on what the engine will see (its camera, light and crowds), and neither
step needs annotations: calibration reads activations, and the held-out check compares each
artifact's keypoints with the PyTorch model's. Pictures and their people come from
``predict.pictures`` (people as ``predict`` finds them) and are cropped by the same geometry as
every other crop. Pictures go whole to the held-out set, then the calibration set, in a seeded
order (``ImageSplit``), as a dataset's images do; a folder is read in that order until both sets
are full, so a large folder costs only the images used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrnext_trt.contract import OWN_IMAGES
from hrnext_trt.data.preprocess import normalize_crops
from hrnext_trt.errors import HrnextError
from hrnext_trt.export.calibration import SEED, CropSets, ImageSplit
from hrnext_trt.predict.pictures import PeopleFinder, open_pictures


def own_crop_sets(path: Path, input_size: tuple[int, int], calib_images: int, verify_images: int,
                  detector: Path | None = None, boxes: Path | None = None, det_family: str | None = None) -> CropSets:
    """Held-out crops first (``verify_images``), then up to ``calib_images`` calibration crops, of
    the people in the images of folder ``path`` or the frames of video ``path``; people from
    ``detector`` (an ONNX), ``boxes`` (a detections file) or, with neither, OpenCV's HOG."""
    path = Path(path)
    pictures = open_pictures(path, "calibration splits pictures into held-out and calibration ones")
    people = PeopleFinder(pictures, detector, boxes, det_family)
    input_size = (int(input_size[0]), int(input_size[1]))

    def crops_of(image: np.ndarray, key, name: str) -> np.ndarray:
        return people.crops(image, key, name, input_size)[0]

    split = ImageSplit(verify_images, calib_images)
    sets = {"heldout": [], "calibration": []}
    seen, empty, unreadable = 0, 0, []
    for key, name, crops in pictures.each(crops_of, seed=SEED):
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
        article = "an" if pictures.unit == "image" else "a"
        raise HrnextError(f"the {what} hold {split.heldout_crops} people, and the {verify_images} held-out crops "
                          f"took them all, leaving none to calibrate on (the two never share {article} "
                          f"{pictures.unit}): pass more pictures, a detector that finds more people "
                          "(--calib-detector), or fewer --verify-images")
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


def _normalized(crops: list[np.ndarray], input_size: tuple[int, int]) -> np.ndarray:
    if not crops:
        return np.empty((0, 3, *input_size), dtype=np.float32)
    return normalize_crops(np.concatenate(crops))
