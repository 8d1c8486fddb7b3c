"""TopDownDataset with a DataLoader: targets, worker seeding, and skipping unreadable images."""

import re
import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hrnext_trt.data.codec import HeatmapCodec
from hrnext_trt.data.datasets import load_dataset
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, crop_images, transform_points
from hrnext_trt.data.files import read_image
from hrnext_trt.data.torch_dataset import TopDownDataset, collate_topdown
from hrnext_trt.errors import HrnextError

INPUT = (256, 192)


def test_test_mode_item_is_the_pipeline_crop_with_gt_targets(data_dir):
    ds = load_dataset("crowdpose", data_dir / "crowdpose-mini", "test", boxes="gt")
    item = TopDownDataset(ds, INPUT, train=False)[0]
    inst = ds.instances[0]
    center, scale = box_to_center_scale(inst.box, INPUT)
    np.testing.assert_allclose(item["image"].numpy(), crop_images(read_image(inst.image_path), center, scale,
                                                                  INPUT)[0])
    joints = transform_points(inst.keypoints[:, :2], affine_matrix(center, scale, 0.0, INPUT))
    target, weight = HeatmapCodec(INPUT).encode(joints, inst.keypoints[:, 2] > 0)
    np.testing.assert_array_equal(item["target"].numpy(), target)
    np.testing.assert_array_equal(item["target_weight"].numpy(), weight)
    assert item["target"].shape == (14, 64, 48) and item["valid"] and not item["flipped"]


def test_detector_boxes_cannot_train(data_dir):
    ds = load_dataset("crowdpose", data_dir / "crowdpose-mini", "test", boxes="det")
    with pytest.raises(HrnextError, match="boxes='gt'"):
        TopDownDataset(ds, INPUT, train=True)
    item = TopDownDataset(ds, INPUT, train=False)[0]
    assert item["target_weight"].sum() == 0


def _epoch(loader, seed):
    torch.manual_seed(seed)
    return [b for b in loader]


def test_dataloader_with_workers_is_reproducible_and_workers_differ(data_dir):
    ds = load_dataset("coco", data_dir / "coco-mini", "train", boxes="gt")
    ds.instances = [ds.instances[0]] * 8  # one person, so any difference is augmentation
    loader = DataLoader(TopDownDataset(ds, INPUT, train=True), batch_size=4, num_workers=2,
                        collate_fn=collate_topdown)
    first, second = _epoch(loader, 0), _epoch(loader, 0)
    assert [b["image"].shape for b in first] == [(4, 3, 256, 192)] * 2
    assert all(b["skipped"] == [] for b in first)
    for a, b in zip(first, second):
        torch.testing.assert_close(a["image"], b["image"])
        torch.testing.assert_close(a["target"], b["target"])
    # The two workers (one batch each) drew different augmentations.
    assert not torch.equal(first[0]["scale"], first[1]["scale"])
    assert not torch.equal(_epoch(loader, 1)[0]["scale"], first[0]["scale"])


def test_unreadable_images_are_skipped_and_counted(data_dir, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(data_dir / "coco-mini", root, ignore=shutil.ignore_patterns("train2017"))
    ds = load_dataset("coco", root, "val", boxes="gt")
    bad = ds.instances[0].image_path
    bad.write_bytes(b"not an image at all")
    bad_count = sum(inst.image_path == bad for inst in ds.instances)
    strict = TopDownDataset(ds, INPUT, train=True)
    with pytest.raises(HrnextError, match="unreadable image"):
        strict[0]
    loader = DataLoader(TopDownDataset(ds, INPUT, train=True, skip_unreadable=True), batch_size=len(ds),
                        collate_fn=collate_topdown)
    (batch,) = list(loader)
    assert len(batch["skipped"]) == bad_count > 0
    assert all(path == str(bad) and "corrupt" in error for path, error in batch["skipped"])
    assert batch["image"].shape[0] == len(ds) - bad_count
    only_bad = collate_topdown([loader.dataset[0]])
    assert set(only_bad) == {"skipped"}

    # A picture above OpenCV's 2^30 pixels (here a PNG header that says 40000 x 40000) is skipped
    # like the others (was: a cv2.error traceback that ended training).
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))
    with pytest.raises(HrnextError, match=r"is larger than OpenCV decodes \(2\^30 pixels; .*: downscale it"):
        strict[0]
    (batch,) = list(loader)
    assert len(batch["skipped"]) == bad_count and all("larger than OpenCV" in e for _, e in batch["skipped"])


def test_an_image_of_another_size_than_its_annotation_is_refused(data_dir, tmp_path):
    """A resized (or rotated) copy of a dataset image would put every box and keypoint on other pixels:
    training skips it with the reason, evaluation refuses it in one line (was: silently wrong)."""
    from hrnext_trt.pipeline import predict

    root = tmp_path / "coco"
    shutil.copytree(data_dir / "coco-mini", root, ignore=shutil.ignore_patterns("train2017"))
    ds = load_dataset("coco", root, "val", boxes="gt")
    small = ds.instances[0].image_path
    image = cv2.imread(str(small))
    cv2.imwrite(str(small), cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))
    info = ds.images[ds.instances[0].image_id]
    said = (f"image {small} is {image.shape[1] // 2}x{image.shape[0] // 2} but person_keypoints_val2017.json records "
            f"{info.width}x{info.height} for it")
    with pytest.raises(HrnextError, match=re.escape(said)):
        TopDownDataset(ds, INPUT, train=True)[0]
    (batch,) = list(DataLoader(TopDownDataset(ds, INPUT, train=True, skip_unreadable=True), batch_size=len(ds),
                               collate_fn=collate_topdown))
    assert batch["skipped"] and all(said in error for _, error in batch["skipped"])
    with pytest.raises(HrnextError, match=re.escape(said)):
        predict(ds, lambda x: np.zeros((len(x), 17, INPUT[0] // 4, INPUT[1] // 4), np.float32), INPUT, progress=False)
