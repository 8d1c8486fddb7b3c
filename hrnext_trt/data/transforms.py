"""Training augmentation of the HRNeXt recipe (mmpose 0.x top-down), as one crop matrix.

In mmpose's order: the box center moves by up to 20 % of the box (probability 0.3, mmpose 0.x's
``_xywh2cs`` in training), random horizontal flip with the flip pairs (0.5), half-body (0.3,
when more than 8 joints (COCO, OCHuman) or 6 (CrowdPose) are visible), scale factor
N(1, 0.5) clipped to [0.5, 1.5] and rotation N(0, 40) clipped to +-80 degrees applied with
probability 0.6. The flip is folded into the affine matrix, so the image is warped once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, transform_points
from hrnext_trt.keypoints import KeypointMeta

# Half-body needs more visible joints than this (mmpose configs: num_joints_half_body).
HALF_BODY_MIN_JOINTS = {"coco": 8, "ochuman": 8, "crowdpose": 6, "mpii": 8, "posetrack": 8}
HALF_BODY_PADDING = 1.5


@dataclass(frozen=True)
class AugmentConfig:
    shift_prob: float = 0.3
    shift_factor: float = 0.2  # largest center shift, as a fraction of the box size
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int | None = None  # None: the dataset's value in HALF_BODY_MIN_JOINTS
    scale_factor: float = 0.5
    rotation_factor: float = 40.0  # degrees
    rotation_prob: float = 0.6


@dataclass(frozen=True)
class Augmented:
    matrix: np.ndarray  # (2, 3) image -> crop, flip included
    keypoints: np.ndarray  # (J, 2) in crop pixels (joint order already mirrored when flipped)
    visible: np.ndarray  # (J,) bool
    center: np.ndarray  # (2,) in the (possibly mirrored) image
    scale: np.ndarray  # (2,)
    rotation: float
    flipped: bool


def random_augment(keypoints: np.ndarray, box: np.ndarray, image_width: int, meta: KeypointMeta,
                   input_size: tuple[int, int], rng: np.random.Generator,
                   config: AugmentConfig = AugmentConfig()) -> Augmented:
    """Random crop of one person: keypoints (J, 3) x, y, v and box (4,) xywh in image pixels."""
    joints = np.asarray(keypoints, dtype=np.float64)[:, :2].copy()
    visible = np.asarray(keypoints)[:, 2] > 0
    center, scale = (a.astype(np.float64) for a in box_to_center_scale(box, input_size))
    if rng.random() < config.shift_prob:
        center += (rng.random(2) * 2 - 1) * config.shift_factor * np.asarray(box[2:4], dtype=np.float64)

    flipped = rng.random() <= config.flip_prob
    if flipped:
        # Work in the mirrored image's frame (x -> W - 1 - x); the mirror joins the matrix below.
        order = list(meta.flip_index)
        joints, visible = joints[order], visible[order]
        joints[:, 0] = image_width - 1 - joints[:, 0]
        joints[~visible] = 0
        center[0] = image_width - 1 - center[0]

    min_joints = config.half_body_min_joints
    if min_joints is None:
        min_joints = HALF_BODY_MIN_JOINTS[meta.name]
    if visible.sum() > min_joints and rng.random() < config.half_body_prob:
        half = _half_body(joints, visible, meta, input_size, rng)
        if half is not None:
            center, scale = half

    sf, rf = config.scale_factor, config.rotation_factor
    scale = scale * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
    rotation = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf)) if rng.random() <= config.rotation_prob \
        else 0.0

    to_crop = affine_matrix(center, scale, rotation, input_size)
    crop_joints = transform_points(joints, to_crop)
    matrix = to_crop
    if flipped:
        mirror = np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = to_crop @ mirror
    return Augmented(matrix, crop_joints, visible, center, scale, rotation, bool(flipped))


def _half_body(joints: np.ndarray, visible: np.ndarray, meta: KeypointMeta, input_size: tuple[int, int],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    upper = np.zeros(len(joints), dtype=bool)
    upper[list(meta.upper_body)] = True
    upper_joints, lower_joints = joints[visible & upper], joints[visible & ~upper]
    # mmpose draws randn() < 0.5 here (upper body about 69 % of the time); kept as the recipe.
    if rng.standard_normal() < 0.5 and len(upper_joints) > 2:
        selected = upper_joints
    elif len(lower_joints) > 2:
        selected = lower_joints
    else:
        selected = upper_joints
    if len(selected) < 2:
        return None
    center = selected.mean(axis=0)
    w, h = selected.max(axis=0) - selected.min(axis=0)
    aspect = input_size[1] / input_size[0]
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) * HALF_BODY_PADDING
