"""The PyTorch ``Dataset`` of top-down crops and heatmap targets (the one torch module of ``data``).

Unreadable images: with ``skip_unreadable=True`` a sample whose image is missing or corrupt is
returned as ``{"valid": False, "index", "image_path", "error"}`` instead of raising, and
``collate_topdown`` drops it from the batch and reports it in ``batch["skipped"]`` (a list of
``(image_path, error)``), so training logs the file and counts it instead of dying mid-epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from hrnext_trt.data.codec import HeatmapCodec
from hrnext_trt.data.datasets import PoseDataset
from hrnext_trt.data.files import read_image
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, normalize_crops, transform_points, \
    warp_crops
from hrnext_trt.data.transforms import AugmentConfig, random_augment
from hrnext_trt.errors import HrnextError


class TopDownDataset(Dataset):
    """Crops of ``pose_dataset``'s instances with their Gaussian heatmap targets.

    Each item: ``image`` float32 (3, H, W) normalised, ``target`` (J, H/4, W/4), ``target_weight``
    (J,), ``valid`` True, and ``index``, ``image_id``, ``center`` (2,), ``scale`` (2,),
    ``rotation``, ``box_score``, ``flipped``. With ``train`` the recipe's augmentation is drawn
    from torch's random generator (so ``torch.manual_seed`` and DataLoader worker seeding make it
    reproducible); without it the crop is the plain test crop. Instances without ground-truth
    keypoints (detector boxes) get all-zero targets and weights.
    """

    def __init__(self, pose_dataset: PoseDataset, input_size: tuple[int, int], train: bool,
                 augment: AugmentConfig | None = None, sigma: float = 2.0, skip_unreadable: bool = False,
                 image_reader: Callable[[Path], np.ndarray] = read_image):
        if train and any(inst.keypoints is None for inst in pose_dataset.instances):
            raise HrnextError(f"training on {pose_dataset.name} {pose_dataset.split} needs ground-truth keypoints: "
                              "load it with boxes='gt'")
        self.dataset = pose_dataset
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train = train
        self.augment = augment or AugmentConfig()
        self.codec = HeatmapCodec(self.input_size, sigma)
        self.skip_unreadable = skip_unreadable
        self.image_reader = image_reader  # read_image's contract: BGR uint8, HrnextError when unreadable

    def __len__(self) -> int:
        return len(self.dataset.instances)

    def __getitem__(self, index: int) -> dict:
        inst = self.dataset.instances[index]
        try:
            image = self.dataset.check_image(inst.image_id, self.image_reader(inst.image_path))
        except HrnextError as exc:
            if not self.skip_unreadable:
                raise
            return {"valid": False, "index": index, "image_path": str(inst.image_path), "error": str(exc)}

        num_joints = self.dataset.meta.num_joints
        if self.train:
            # One numpy generator per sample, seeded from torch's: reproducible, and distinct in
            # every DataLoader worker (numpy's global state would repeat across forked workers).
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
            aug = random_augment(inst.keypoints, inst.box, image.shape[1], self.dataset.meta, self.input_size, rng,
                                 self.augment)
            matrix, joints, visible = aug.matrix, aug.keypoints, aug.visible
            center, scale, rotation, flipped = aug.center, aug.scale, aug.rotation, aug.flipped
        else:
            center, scale = box_to_center_scale(inst.box, self.input_size)
            matrix = affine_matrix(center, scale, 0.0, self.input_size)
            rotation, flipped = 0.0, False
            if inst.keypoints is not None:
                joints, visible = transform_points(inst.keypoints[:, :2], matrix), inst.keypoints[:, 2] > 0
            else:
                joints, visible = np.zeros((num_joints, 2)), np.zeros(num_joints, dtype=bool)

        crop = normalize_crops(warp_crops(image, matrix[None], self.input_size))[0]
        target, weight = self.codec.encode(joints, visible)
        return {
            "image": torch.from_numpy(crop),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "valid": True,
            "index": index,
            "image_id": inst.image_id,
            "center": torch.as_tensor(center, dtype=torch.float32),
            "scale": torch.as_tensor(scale, dtype=torch.float32),
            "rotation": float(rotation),
            "box_score": float(inst.box_score),
            "flipped": flipped,
        }


def collate_topdown(samples: list[dict]) -> dict:
    """Batch the readable samples; ``batch["skipped"]`` lists ``(image_path, error)`` of the others.

    A batch whose every sample was unreadable has only the ``skipped`` key.
    """
    skipped = [(s["image_path"], s["error"]) for s in samples if not s["valid"]]
    valid = [s for s in samples if s["valid"]]
    batch = default_collate(valid) if valid else {}
    batch["skipped"] = skipped
    return batch
