"""evaluate_results equals the reference evaluators; OKS-NMS; clear errors for bad results."""

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from hrnext_trt.evaluation import evaluate_results, oks_matrix, oks_nms
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import COCO, CROWDPOSE

ANN = {
    "crowdpose": ("crowdpose-mini", "annotations/mmpose_crowdpose_test.json"),
    "coco": ("coco-mini", "annotations/person_keypoints_val2017.json"),
    "ochuman": ("ochuman-mini", "annotations/ochuman_coco_format_test_range_0.00_1.00.json"),
}


def _noisy_predictions(ann_file, seed, noise=0.04):
    """Ground truth with Gaussian noise (a fraction of the box size) on every joint, random scores, plus a few false people."""
    rng = np.random.default_rng(seed)
    data = json.loads(ann_file.read_text())
    joints = len(data["annotations"][0]["keypoints"]) // 3
    results = []
    for ann in data["annotations"]:
        kp = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        size = np.sqrt(ann["bbox"][2] * ann["bbox"][3])  # noise in proportion to the person
        kp[:, :2] += rng.normal(0, noise * size, (len(kp), 2)) * rng.uniform(0.2, 2)
        kp[:, 2] = rng.uniform(0.1, 1, len(kp))
        results.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                        "score": float(rng.uniform(0.3, 1))})
    for image in data["images"]:
        kp = np.column_stack([rng.uniform(0, image["width"], (joints, 2)), rng.uniform(0, 1, joints)])
        results.append({"image_id": image["id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                        "score": float(rng.uniform(0, 0.5))})
    return results


def _reference_stats(name, ann_file, results):
    with contextlib.redirect_stdout(io.StringIO()):
        if name == "crowdpose":
            from xtcocotools.coco import COCO as XCOCO
            from xtcocotools.cocoeval import COCOeval as XCOCOeval

            gt = XCOCO(str(ann_file))
            ev = XCOCOeval(gt, gt.loadRes(results), "keypoints_crowd", np.array(CROWDPOSE.sigmas), use_area=False)
            ev.params.useSegm = None
        else:
            from pycocotools.coco import COCO as PCOCO
            from pycocotools.cocoeval import COCOeval as PCOCOeval

            gt = PCOCO(str(ann_file))
            ev = PCOCOeval(gt, gt.loadRes(results), "keypoints")  # COCO's own default sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("name", ["crowdpose", "coco", "ochuman"])
def test_metrics_equal_reference_library(data_dir, name):
    sub, rel = ANN[name]
    ann_file = data_dir / sub / rel
    results = _noisy_predictions(ann_file, seed=len(name))
    ours = evaluate_results(name, ann_file, results)
    ref = _reference_stats(name, ann_file, json.loads(json.dumps(results)))
    if name == "crowdpose":
        keys = ["AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"]
    else:
        keys = ["AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L"]
    assert list(ours) == keys
    np.testing.assert_allclose([ours[k] for k in keys], ref, atol=1e-6)
    assert 0.05 < ours["AP"] < 0.99  # the noise made it a real test, neither perfect nor empty


def test_crowdpose_easy_and_hard_splits_equal_reference(data_dir, tmp_path):
    # crowdpose-mini's images are all "medium"; move one to easy and one to hard (thresholds 0.2, 0.8).
    data = json.loads((data_dir / "crowdpose-mini" / ANN["crowdpose"][1]).read_text())
    data["images"][0]["crowdIndex"], data["images"][1]["crowdIndex"] = 0.05, 0.9
    ann_file = tmp_path / "mmpose_crowdpose_test.json"
    ann_file.write_text(json.dumps(data))
    results = _noisy_predictions(ann_file, seed=11)
    ours = evaluate_results("crowdpose", ann_file, results)
    ref = _reference_stats("crowdpose", ann_file, json.loads(json.dumps(results)))
    np.testing.assert_allclose(list(ours.values()), ref, atol=1e-6)
    assert ours["AP_easy"] > 0 and ours["AP_hard"] > 0 and ours["AP_medium"] == -1  # -1: no such image


@pytest.mark.parametrize("name", ["coco", "crowdpose"])
def test_a_results_bbox_changes_no_score(data_dir, name):
    """predict's results carry each person's bbox: the COCO tools' loadRes would then take the
    detection branch and give results box areas, changing AP_M / AP_L (and a null bbox was a
    traceback inside it). Scored fields only: the same scores with and without."""
    sub, rel = ANN[name]
    ann_file = data_dir / sub / rel
    results = _noisy_predictions(ann_file, seed=7)
    rng = np.random.default_rng(7)
    with_boxes = [{**r, "bbox": [0.0, 0.0, float(w), float(h)]} for r, (w, h) in
                  zip(results, rng.uniform(5, 400, (len(results), 2)))]
    assert evaluate_results(name, ann_file, with_boxes) == evaluate_results(name, ann_file, results)
    nulls = [{**r, "bbox": None} for r in results]
    assert evaluate_results(name, ann_file, nulls) == evaluate_results(name, ann_file, results)


def test_results_file_path_and_list_agree_and_list_is_untouched(data_dir, tmp_path):
    sub, rel = ANN["coco"]
    ann_file = data_dir / sub / rel
    results = _noisy_predictions(ann_file, seed=3)
    snapshot = json.dumps(results)
    path = tmp_path / "results.json"
    path.write_text(snapshot)
    assert evaluate_results("coco", ann_file, results) == evaluate_results("coco", ann_file, path)
    assert json.dumps(results) == snapshot


def _one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message


def test_results_for_another_dataset_are_refused(data_dir, tmp_path):
    coco_results = _noisy_predictions(data_dir / "coco-mini" / ANN["coco"][1], seed=4)
    path = tmp_path / "coco_results.json"
    path.write_text(json.dumps(coco_results))
    with pytest.raises(HrnextError) as exc:
        evaluate_results("crowdpose", data_dir / "crowdpose-mini" / ANN["crowdpose"][1], path)
    _one_line(exc, path, "17 keypoints", "crowdpose has 14")
    # Right joint count, wrong images (OCHuman results scored on COCO).
    ochuman_results = _noisy_predictions(data_dir / "ochuman-mini" / ANN["ochuman"][1], seed=5)
    with pytest.raises(HrnextError) as exc:
        evaluate_results("coco", data_dir / "coco-mini" / ANN["coco"][1], ochuman_results)
    _one_line(exc, "image_id", "not in the annotation file")


def test_malformed_results_and_annotations_are_one_line(data_dir, tmp_path):
    ann_file = data_dir / "coco-mini" / ANN["coco"][1]
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"image_id\": 785, ")
    with pytest.raises(HrnextError) as exc:
        evaluate_results("coco", ann_file, bad)
    _one_line(exc, bad, "malformed JSON")
    bad.write_text(json.dumps({"image_id": 785}))
    with pytest.raises(HrnextError) as exc:
        evaluate_results("coco", ann_file, bad)
    _one_line(exc, bad, "list")
    with pytest.raises(HrnextError) as exc:
        evaluate_results("coco", tmp_path / "missing.json", [])
    _one_line(exc, "missing.json", "not found")
    # A COCO file given as CrowdPose ground truth: its people have 17 keypoints, CrowdPose's 14.
    shutil.copy(ann_file, tmp_path / "gt.json")
    results = _noisy_predictions(data_dir / "crowdpose-mini" / ANN["crowdpose"][1], seed=6)
    with pytest.raises(HrnextError) as exc:
        evaluate_results("crowdpose", tmp_path / "gt.json", results)
    _one_line(exc, "gt.json", "annotation 0", "crowdpose has 14")
    # A CrowdPose file without the crowd index the protocol needs.
    data = json.loads((data_dir / "crowdpose-mini" / ANN["crowdpose"][1]).read_text())
    for image in data["images"]:
        del image["crowdIndex"]
    (tmp_path / "gt.json").write_text(json.dumps(data))
    with pytest.raises(HrnextError) as exc:
        evaluate_results("crowdpose", tmp_path / "gt.json", results)
    _one_line(exc, "crowdIndex")


def test_no_results_is_refused_not_scored_zero(data_dir):
    # An empty list measures nothing: scoring it 0 would read as a terrible model.
    with pytest.raises(HrnextError) as exc:
        evaluate_results("coco", data_dir / "coco-mini" / ANN["coco"][1], [])
    _one_line(exc, "no results")


def _naive_oks(a, b, area_a, area_b, sigmas):
    variances = (2 * np.array(sigmas)) ** 2
    d2 = ((a[:, :2] - b[:, :2]) ** 2).sum(1)
    return np.mean(np.exp(-d2 / variances / ((area_a + area_b) / 2 + np.spacing(1)) / 2))


def test_oks_matrix_matches_pairwise_definition():
    rng = np.random.default_rng(7)
    poses = rng.uniform(0, 100, (5, 17, 3))
    areas = rng.uniform(500, 5000, 5)
    oks = oks_matrix(poses, areas, COCO.sigmas)
    for i in range(5):
        for j in range(5):
            assert oks[i, j] == pytest.approx(_naive_oks(poses[i], poses[j], areas[i], areas[j], COCO.sigmas))


def test_oks_nms_drops_near_duplicates_only():
    rng = np.random.default_rng(8)
    person_a = rng.uniform(100, 200, (14, 3))
    person_b = person_a + [150, 0, 0]  # a different person, side by side
    duplicate = person_a + [0.5, -0.5, 0]  # the same person found twice
    poses = np.stack([duplicate, person_a, person_b])
    scores = np.array([0.8, 0.9, 0.7])
    areas = np.full(3, 100.0 * 130.0)
    keep = oks_nms(poses, scores, areas, CROWDPOSE.sigmas, threshold=0.9)
    assert keep.tolist() == [1, 2]
    # A duplicate with the better score wins instead.
    assert oks_nms(poses, np.array([0.95, 0.9, 0.7]), areas, CROWDPOSE.sigmas).tolist() == [0, 2]
    # Threshold 1 keeps everything; nothing in, nothing out.
    assert sorted(oks_nms(poses, scores, areas, CROWDPOSE.sigmas, threshold=1.0).tolist()) == [0, 1, 2]
    assert oks_nms(np.zeros((0, 14, 3)), np.zeros(0), np.zeros(0), CROWDPOSE.sigmas).size == 0
    # Equal scores: the later pose first, as mmpose's argsort()[::-1] (was the earlier: another pose kept).
    assert oks_nms(poses, np.array([0.9, 0.9, 0.7]), areas, CROWDPOSE.sigmas).tolist() == [1, 2]
    assert oks_nms(poses[[1, 0, 2]], np.array([0.9, 0.9, 0.7]), areas, CROWDPOSE.sigmas).tolist() == [1, 2]
    # A NaN score (a broken model's) ranks last, as it did.
    assert oks_nms(poses, np.array([np.nan, 0.9, 0.7]), areas, CROWDPOSE.sigmas).tolist() == [1, 2]
