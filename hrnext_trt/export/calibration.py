"""Real crops for INT8 calibration and for the accuracy checks, from the project's own data pipeline.

Crops come from a dataset's training split through ``hrnext_trt.data`` (the same boxes-to-crop
geometry and normalisation as inference), split BY IMAGE into two disjoint sets: held-out crops
that only the accuracy checks see, and calibration crops that only the quantizer sees.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.data import load_dataset
from hrnext_trt.errors import HrnextError
from hrnext_trt.pipeline import iter_batches

# The split calibration reads: the training split, except where a benchmark has none (OCHuman: its
# val split is the one not behind the published test numbers).
CALIB_SPLIT = {"ochuman": "val"}  # datasets whose calibration split is not "train"
SEED = 0  # which images are held out is fixed, so two exports of one model are comparable


@dataclass
class CropSets:
    calibration: np.ndarray  # (N, 3, H, W) float32, normalised
    heldout: np.ndarray  # (M, 3, H, W) float32, from other images than the calibration crops
    source: dict  # dataset, root, split and counts, recorded in the manifest


def source_label(source: dict) -> str:
    """Where the crops of a ``CropSets.source`` came from, in words."""
    if source["split"] is None:  # own pictures (own_images.py)
        return f"pictures in {source['root']}, people from {source['people_from']}"
    return f"the {source['dataset']} {source['split']} split at {source['root']}"


class ImageSplit:
    """Images taken in turn (in a seeded order) into the held-out set until it has ``verify``
    crops, then into the calibration set until it has ``calib``: the two never share an image."""

    def __init__(self, verify: int, calib: int):
        self.verify, self.calib = verify, calib
        self.heldout: list = []  # image keys, in the order taken
        self.calibration: list = []
        self.heldout_crops = self.calibration_crops = 0

    @property
    def full(self) -> bool:
        return self.heldout_crops >= self.verify and self.calibration_crops >= self.calib

    def add(self, key, people: int) -> str | None:
        """Which set takes this image of ``people`` people ("heldout", "calibration"), None if both are full."""
        if self.heldout_crops < self.verify:
            self.heldout.append(key)
            self.heldout_crops += people
            return "heldout"
        if self.calibration_crops < self.calib:
            self.calibration.append(key)
            self.calibration_crops += people
            return "calibration"
        return None


def default_calib_root(dataset: str) -> Path:
    """Without --calib-data the bundled coco-mini sample calibrates (the only bundle with a train split)."""
    if dataset != "coco":
        raise HrnextError(f"calibration dataset {dataset} needs its data root (calib_data): only coco has a "
                          "bundled training sample")
    return bundled_dataset_root("coco-mini")


def make_crop_sets(dataset: str, root: Path | None, input_size: tuple[int, int], calib_images: int,
                   verify_images: int, split: str | None = None) -> CropSets:
    """Held-out crops first (``verify_images`` of them), then up to ``calib_images`` calibration crops
    (0: none, when nothing is quantized), both from ``split`` (default: ``CALIB_SPLIT`` of the dataset)."""
    root = Path(root) if root is not None else default_calib_root(dataset)
    split = split or CALIB_SPLIT.get(dataset, "train")
    data = load_dataset(dataset, root, split, boxes="gt")
    people = Counter(inst.image_id for inst in data.instances)
    split_sets = ImageSplit(verify_images, calib_images)
    for image_id in np.random.default_rng(SEED).permutation(sorted(people)).tolist():
        if split_sets.full:
            break
        split_sets.add(image_id, people[image_id])
    heldout_ids, calib_ids = set(split_sets.heldout), set(split_sets.calibration)
    if calib_images and not calib_ids:
        raise HrnextError(f"{dataset} {split} split under {root} has {len(data.instances)} people in "
                          f"{len(people)} images, and its {verify_images} held-out crops took every image, leaving "
                          "none to calibrate on (the two never share an image): pass a larger --calib-data, or "
                          "fewer --verify-images")
    heldout = _crops(data, heldout_ids, input_size)[:verify_images]
    calibration = _crops(data, calib_ids, input_size)[:calib_images]
    source = {
        "dataset": dataset,
        "root": str(root),
        "split": split,
        "calibration_crops": len(calibration),
        "calibration_images": len(calib_ids),
        "heldout_crops": len(heldout),
        "heldout_images": len(heldout_ids),
        "requested_calibration_crops": calib_images,
    }
    return CropSets(calibration, heldout, source)


def _crops(data, image_ids: set, input_size: tuple[int, int]) -> np.ndarray:
    """Crops of every person in ``image_ids``, made by the inference pipeline itself."""
    subset = dataclasses.replace(data, instances=[i for i in data.instances if i.image_id in image_ids])
    batches = [b.images for b in iter_batches(subset, input_size, batch_size=64)]
    return np.concatenate(batches) if batches else np.empty((0, 3, *input_size), dtype=np.float32)
