"""Datasets from their own layouts: instance selection, detector boxes and clear errors."""

import json
import shutil

import numpy as np
import pytest

from hrnext_trt.data.datasets import load_dataset
from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError


@pytest.fixture()
def crowdpose_copy(data_dir, tmp_path):
    root = tmp_path / "crowdpose"
    shutil.copytree(data_dir / "crowdpose-mini", root)
    return root


def test_gt_instances_follow_mmpose_selection(data_dir):
    ds = load_dataset("coco", data_dir / "coco-mini", "train", boxes="gt")
    anns = json.loads(ds.ann_file.read_text())["annotations"]
    usable = [a for a in anns if not a["iscrowd"] and a["num_keypoints"] > 0]
    assert 0 < len(ds) == len(usable) < len(anns)
    assert all(inst.keypoints.shape == (17, 3) and inst.box_score == 1.0 for inst in ds.instances)
    # The box is the annotation's, clipped to the image with mmpose's "w - 1" convention.
    first = next(a for a in usable if a["image_id"] == ds.instances[0].image_id)
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(ds.instances[0].box, [max(x, 0), max(y, 0), w - 1, h - 1], atol=1e-3)
    assert all(inst.image_path.parent == data_dir / "coco-mini" / "train2017" for inst in ds.instances)


@pytest.mark.parametrize("name, sub, split, joints", [("crowdpose", "crowdpose-mini", "test", 14),
                                                      ("coco", "coco-mini", "val", 17),
                                                      ("ochuman", "ochuman-mini", "test", 17)])
def test_every_dataset_loads_from_its_layout(data_dir, name, sub, split, joints):
    ds = load_dataset(name, data_dir / sub, split, boxes="gt")
    assert ds.meta.num_joints == joints and len(ds) > 0 and len(ds.images) > 0
    assert all(inst.image_path.is_file() for inst in ds.instances)
    assert read_image(ds.instances[0].image_path).ndim == 3


def test_detector_boxes_with_threshold(data_dir):
    dets = json.loads((data_dir / "coco-mini" / "person_detection_results" /
                       "COCO_val2017_detections_AP_H_56_person.json").read_text())
    ds = load_dataset("coco", data_dir / "coco-mini", "val", boxes="det")
    assert len(ds) == sum(d["category_id"] == 1 for d in dets)
    assert all(inst.keypoints is None for inst in ds.instances)
    strict = load_dataset("coco", data_dir / "coco-mini", "val", boxes="det", det_score_thr=0.5)
    assert len(strict) == sum(d["score"] >= 0.5 for d in dets) < len(ds)
    assert min(inst.box_score for inst in strict.instances) >= 0.5


def test_image_without_detector_boxes_has_no_instances(crowdpose_copy):
    det_file = crowdpose_copy / "annotations" / "det_for_crowd_test_0.1_0.5.json"
    dets = json.loads(det_file.read_text())
    kept_image = dets[0]["image_id"]
    det_file.write_text(json.dumps([d for d in dets if d["image_id"] == kept_image]))
    ds = load_dataset("crowdpose", crowdpose_copy, "test", boxes="det")
    assert len(ds.images) == 2 and {inst.image_id for inst in ds.instances} == {kept_image}


def _refused(*args, **kwargs):
    with pytest.raises(HrnextError) as exc:
        load_dataset(*args, **kwargs)
    return exc


def _one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message
    return message


def test_a_missing_annotation_file_names_the_way_to_it(data_dir):
    # MPII and PoseTrack read converted files: the line gives the convert command for the release
    # file the root holds; a split the root lacks names the split it has; a split without
    # detections names ground-truth boxes.
    for name, sub, source, made in [("mpii", "mpii-mini", "annot/valid.json", "annotations/mpii_val.json"),
                                    ("posetrack", "posetrack18-mini", "annotations/val",
                                     "annotations/posetrack18_val.json")]:
        _one_line(_refused(name, data_dir / sub, "val"),
                  f"hrnext-trt convert {name} {data_dir / sub / source} --out {data_dir / sub / made}")
    # The split it names is CrowdPose's published test split: said, as training there is no test.
    _one_line(_refused("crowdpose", data_dir / "crowdpose-mini", "train"), "mmpose_crowdpose_train.json",
              "has the test (where crowdpose's accuracy is published: train on it only to try the tool) split")
    # OCHuman is a test set: a training split of it is no typo to fix but a dataset to change.
    _one_line(_refused("ochuman", data_dir / "ochuman-mini", "train"), "choose one of val, test (ochuman has no "
              "training split: its configs train on COCO and test on ochuman)")
    _one_line(_refused("coco", data_dir / "coco-mini", "train", boxes="det"), "--boxes gt")


def test_missing_and_corrupt_images_name_the_file(crowdpose_copy):
    image = crowdpose_copy / "images" / "103319.jpg"
    image.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(HrnextError) as exc:
        read_image(image)
    _one_line(exc, image, "corrupt")
    image.unlink()
    with pytest.raises(HrnextError) as exc:
        read_image(image)
    _one_line(exc, image, "not found")


def test_malformed_json_names_the_file(crowdpose_copy):
    ann = crowdpose_copy / "annotations" / "mmpose_crowdpose_test.json"
    ann.write_text('{"images": [')
    _one_line(_refused("crowdpose", crowdpose_copy, "test"), ann, "malformed JSON")


def test_malformed_detector_file_names_the_file(crowdpose_copy):
    det_file = crowdpose_copy / "annotations" / "det_for_crowd_test_0.1_0.5.json"
    det_file.write_text(json.dumps([{"image_id": 103319, "score": 0.9}]))
    _one_line(_refused("crowdpose", crowdpose_copy, "test", boxes="det"), det_file, "bbox")


def test_annotations_of_another_dataset_are_refused(data_dir, tmp_path):
    root = tmp_path / "crowdpose"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    shutil.copy(data_dir / "coco-mini" / "annotations" / "person_keypoints_val2017.json",
                root / "annotations" / "mmpose_crowdpose_test.json")
    _one_line(_refused("crowdpose", root, "test"), "17 keypoints", "crowdpose has 14")


def test_bad_names_and_protocol_gaps_are_one_line(data_dir):
    _one_line(_refused("mpii", data_dir / "coco-mini", "val"), "mpii")
    _one_line(_refused("coco", data_dir / "coco-mini", "test2017"), "test2017", "train, val")
    _one_line(_refused("ochuman", data_dir / "ochuman-mini", "test", boxes="det"), "ground-truth boxes (--boxes gt)",
              "(--det-file)")
    _one_line(_refused("coco", data_dir / "no-such-root", "val"), "no-such-root")


def test_detector_boxes_on_a_split_without_labelled_joints_are_refused(crowdpose_copy):
    """Scoring would give NaN or -1 for every row after the whole run: one line before it."""
    ann_file = crowdpose_copy / "annotations" / "mmpose_crowdpose_test.json"
    data = json.loads(ann_file.read_text())
    for ann in data["annotations"]:
        ann["keypoints"] = [0] * len(ann["keypoints"])
        ann["num_keypoints"] = 0
    ann_file.write_text(json.dumps(data))
    people = sum(not ann.get("iscrowd", 0) for ann in data["annotations"])
    _one_line(_refused("crowdpose", crowdpose_copy, "test", boxes="det"),
              f"none of its {people} people has a labelled joint, so detector boxes would have nothing to be scored "
              "against: check the file")
