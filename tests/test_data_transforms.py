"""Training augmentation: the crop matrix, the keypoints and the flip all agree."""

import cv2
import numpy as np

from hrnext_trt.data.datasets import load_dataset
from hrnext_trt.data.preprocess import box_to_center_scale, transform_points
from hrnext_trt.data.transforms import AugmentConfig, random_augment
from hrnext_trt.keypoints import COCO

INPUT = (256, 192)


def _person(data_dir):
    ds = load_dataset("coco", data_dir / "coco-mini", "train", boxes="gt")
    # The largest person with every joint labelled, so half-body and flips have something to do.
    full = [inst for inst in ds.instances if (inst.keypoints[:, 2] > 0).all()]
    return max(full, key=lambda inst: inst.box[2] * inst.box[3])


def test_keypoints_follow_the_crop_matrix_and_pixels(data_dir):
    inst = _person(data_dir)
    width = 640
    # Paint each joint with its own grey level, then check the warped pixel under each moved joint.
    canvas = np.zeros((width, width, 3), np.uint8)
    for j, (x, y, _) in enumerate(inst.keypoints):
        cv2.circle(canvas, (int(round(x)), int(round(y))), 4, (10 * (j + 1),) * 3, -1)
    gaps = np.linalg.norm(inst.keypoints[:, None, :2] - inst.keypoints[None, :, :2], axis=-1) + np.eye(17) * 1e9
    apart = gaps.min(1) > 12  # joints whose paint no other joint covers
    rng = np.random.default_rng(0)
    seen_flip = seen_rotation = False
    for _ in range(20):
        aug = random_augment(inst.keypoints, inst.box, width, COCO, INPUT, rng)
        order = list(COCO.flip_index) if aug.flipped else list(range(17))
        np.testing.assert_allclose(aug.keypoints, transform_points(inst.keypoints[order, :2], aug.matrix),
                                   atol=1e-6)
        crop = cv2.warpAffine(canvas, aug.matrix, (INPUT[1], INPUT[0]), flags=cv2.INTER_NEAREST)
        for j, (x, y) in enumerate(aug.keypoints):
            if apart[order[j]] and 0 <= x < INPUT[1] and 0 <= y < INPUT[0]:
                assert crop[int(y), int(x), 0] == 10 * (order[j] + 1)
        seen_flip |= aug.flipped
        seen_rotation |= aug.rotation != 0
    assert seen_flip and seen_rotation and apart.sum() >= 8


def test_flip_keeps_left_joints_on_the_persons_left(data_dir):
    inst = _person(data_dir)
    cfg = AugmentConfig(flip_prob=1.0, half_body_prob=0.0, rotation_prob=0.0, scale_factor=0.0, shift_prob=0.0)
    aug = random_augment(inst.keypoints, inst.box, 640, COCO, INPUT, np.random.default_rng(1), cfg)
    assert aug.flipped
    for left, right in COCO.flip_pairs:
        before = np.sign(inst.keypoints[left, 0] - inst.keypoints[right, 0])
        after = np.sign(aug.keypoints[left, 0] - aug.keypoints[right, 0])
        # The mirrored person's left is the original right, so (like any person seen from one
        # side) its left joints keep the image side that left joints had.
        assert after == before


def test_half_body_crops_one_half(data_dir):
    inst = _person(data_dir)
    cfg = AugmentConfig(flip_prob=0.0, half_body_prob=1.0, rotation_prob=0.0, scale_factor=0.0, shift_prob=0.0)
    full_scale = box_to_center_scale(inst.box, INPUT)[1]
    upper = inst.keypoints[list(COCO.upper_body), :2]
    lower = inst.keypoints[list(COCO.lower_body), :2]
    rng = np.random.default_rng(2)
    halves = set()
    for _ in range(30):
        aug = random_augment(inst.keypoints, inst.box, 640, COCO, INPUT, rng, cfg)
        half = "upper" if np.allclose(aug.center, upper.mean(0)) else "lower"
        assert half == "upper" or np.allclose(aug.center, lower.mean(0))
        halves.add(half)
        assert aug.scale[1] < full_scale[1]
        np.testing.assert_allclose(aug.scale[0] / aug.scale[1], 0.75)
    assert halves == {"upper", "lower"}


def test_random_ranges_follow_the_recipe(data_dir):
    inst = _person(data_dir)
    cfg = AugmentConfig(half_body_prob=0.0, shift_prob=0.0)
    base = box_to_center_scale(inst.box, INPUT)[1]
    rng = np.random.default_rng(3)
    augs = [random_augment(inst.keypoints, inst.box, 640, COCO, INPUT, rng, cfg) for _ in range(2000)]
    factors = np.array([a.scale[0] / base[0] for a in augs])
    rotations = np.array([a.rotation for a in augs])
    assert factors.min() >= 0.5 - 1e-6 and factors.max() <= 1.5 + 1e-6 and factors.std() > 0.3
    assert np.abs(rotations).max() <= 80 and np.abs(rotations).max() > 40
    assert 0.55 < np.mean(rotations != 0) < 0.65
    assert 0.45 < np.mean([a.flipped for a in augs]) < 0.55
