"""data.cache_images: decoded images in memory give exactly the samples (and the training) of the disk."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from hrnext_trt.data import load_dataset
from hrnext_trt.data.files import read_image
from hrnext_trt.data.torch_dataset import TopDownDataset
from hrnext_trt.data.transforms import AugmentConfig
from hrnext_trt.errors import HrnextError
from hrnext_trt.training.cache import ImageCache


NO_AUGMENTATION = AugmentConfig(shift_prob=0, flip_prob=0, half_body_prob=0, scale_factor=0, rotation_prob=0)


@pytest.mark.parametrize("augment", [AugmentConfig(), NO_AUGMENTATION], ids=["recipe augmentation", "demo preset's"])
def test_cached_images_give_the_samples_of_the_disk(data_dir, augment):
    people = load_dataset("coco", data_dir / "coco-mini", "train")
    cache = ImageCache(people)
    assert len(cache) == len({inst.image_path for inst in people.instances})
    disk = TopDownDataset(people, (64, 48), train=True, augment=augment)
    memory = TopDownDataset(people, (64, 48), train=True, augment=augment, image_reader=cache)
    torch.manual_seed(7)
    from_disk = [disk[i] for i in range(len(disk))]
    after_disk = torch.get_rng_state()
    torch.manual_seed(7)  # the same random draws: the augmentation must come out the same
    from_memory = [memory[i] for i in range(len(memory))]
    assert torch.equal(torch.get_rng_state(), after_disk)  # and leave the generator where the disk did
    for a, b in zip(from_disk, from_memory, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[key]), key
            else:
                assert value == b[key], key


def test_cached_images_are_read_only_and_equal_to_a_fresh_decode(data_dir):
    people = load_dataset("coco", data_dir / "coco-mini", "train")
    cache = ImageCache(people, threads=2)
    path = people.instances[0].image_path
    image = cache(path)
    assert (image == read_image(path)).all() and image.nbytes * len(cache) >= cache.nbytes > 0
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1  # a sample that drew on it would change every later epoch


def test_unreadable_image_stays_unreadable_in_the_cache(data_dir, tmp_path):
    src = data_dir / "coco-mini"
    ann = json.loads((src / "annotations" / "person_keypoints_train2017.json").read_text())
    images = ann["images"][:3]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    for im in images:
        shutil.copy(src / "train2017" / im["file_name"], tmp_path / "train2017" / im["file_name"])
    bad = tmp_path / "train2017" / images[1]["file_name"]
    bad.write_bytes(b"not a JPEG")
    ids = {im["id"] for im in images}
    subset = {**ann, "images": images, "annotations": [a for a in ann["annotations"] if a["image_id"] in ids]}
    (tmp_path / "annotations" / "person_keypoints_train2017.json").write_text(json.dumps(subset))

    people = load_dataset("coco", tmp_path, "train")
    cache = ImageCache(people)
    with pytest.raises(HrnextError) as from_disk:
        read_image(bad)
    with pytest.raises(HrnextError) as from_memory:
        cache(bad)
    assert str(from_memory.value) == str(from_disk.value)
    crops = TopDownDataset(people, (64, 48), train=True, skip_unreadable=True, image_reader=cache)
    index = next(i for i, inst in enumerate(people.instances) if inst.image_path == bad)
    sample = crops[index]
    assert not sample["valid"] and sample["error"] == str(from_disk.value)


def test_cache_too_large_for_memory_is_refused_in_one_line(data_dir):
    people = load_dataset("coco", data_dir / "coco-mini", "train")
    with pytest.raises(HrnextError) as exc:
        ImageCache(people, limit_bytes=2 ** 20)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(
        "data.cache_images would keep 22 MiB of decoded coco train images in memory (limit 1 MiB)")
    assert "set data.cache_images false" in message
