"""MPII PCKh and PoseTrack AP: ground truth scores 100, shifted joints lose exactly the joints
they should (hand-computed), and PCKh equals the MPII toolkit's formula on its own gt_valid.mat."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation import evaluate_results
from hrnext_trt.evaluation.posetrack import SCORED_JOINTS, inside_polygon, joint_ap, posetrack_metrics
from hrnext_trt.keypoints import MPII, POSETRACK
from tests.mini_roots import mpii_root, posetrack_root

J_MPII = {name: j for j, name in enumerate(MPII.keypoint_names)}
J_PT = {name: j for j, name in enumerate(POSETRACK.keypoint_names)}


@pytest.fixture(scope="module")
def mpii_ann(data_dir, tmp_path_factory):
    return mpii_root(data_dir, tmp_path_factory.mktemp("mpii")) / "annotations" / "mpii_val.json"


@pytest.fixture(scope="module")
def posetrack_ann(data_dir, tmp_path_factory):
    return posetrack_root(data_dir, tmp_path_factory.mktemp("pt")) / "annotations" / "posetrack18_val.json"


def _mpii_gt_results(ann_file):
    data = json.loads(ann_file.read_text())
    return data, [{"image_id": a["image_id"], "annotation_id": a["id"], "keypoints": list(a["keypoints"]),
                   "score": 1.0} for a in data["annotations"]]


def _head_size(ann) -> float:
    x1, y1, x2, y2 = ann["head_box"]
    return float(0.6 * np.hypot(x2 - x1, y2 - y1))  # a Python float, as results files hold


def test_ground_truth_scores_100_through_the_command(mpii_ann, posetrack_ann, tmp_path):
    _, results = _mpii_gt_results(mpii_ann)
    (tmp_path / "mpii.json").write_text(json.dumps(results))
    out = CliRunner().invoke(main, ["evaluate", "--dataset", "mpii", "--ann", str(mpii_ann), "--results",
                                    str(tmp_path / "mpii.json"), "--json"])
    assert out.exit_code == 0, out.output
    metrics = json.loads(out.output)
    assert list(metrics) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]
    assert all(v == 100.0 for v in metrics.values())

    data = json.loads(posetrack_ann.read_text())
    results = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 1.0} for a in data["annotations"]]
    (tmp_path / "pt.json").write_text(json.dumps(results))
    out = CliRunner().invoke(main, ["evaluate", "--dataset", "posetrack", "--ann", str(posetrack_ann), "--results",
                                    str(tmp_path / "pt.json"), "--json"])
    assert out.exit_code == 0, out.output
    metrics = json.loads(out.output)
    assert metrics["mAP"] == 100.0 and len([k for k in metrics if k.startswith("AP_")]) == 15
    assert all(metrics[g] == 100.0 for g in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"))


def test_mpii_shifted_joints_lose_exactly_those_joints(mpii_ann):
    data, results = _mpii_gt_results(mpii_ann)
    ann = data["annotations"][0]
    head = _head_size(ann)
    # Person 1: left wrist 0.6 head sizes off (wrong at 0.5), left knee 0.3 off (right at 0.5, wrong
    # at 0.1), pelvis far off (not in Mean, in no group).
    for name, dx in (("left_wrist", 0.6 * head), ("left_knee", 0.3 * head), ("pelvis", 5 * head)):
        results[0]["keypoints"][3 * J_MPII[name]] += dx
    m = evaluate_results("mpii", mpii_ann, results)
    # 5 people x 14 joints (pelvis, thorax excluded), 2 people without ankles: 66 annotated.
    assert m["Wrist"] == pytest.approx((80 + 100) / 2) and m["Knee"] == 100 and m["Head"] == 100
    assert m["Mean"] == pytest.approx(100 * 65 / 66) and m["Mean@0.1"] == pytest.approx(100 * 64 / 66)
    # A joint at exactly 0.5 head sizes still counts (<=), as in the toolkit.
    results[0]["keypoints"][3 * J_MPII["left_wrist"]] = ann["keypoints"][3 * J_MPII["left_wrist"]] + 0.5 * head
    assert evaluate_results("mpii", mpii_ann, results)["Wrist"] == 100


def test_mpii_pckh_equals_the_toolkit_formula_on_gt_valid_mat(mpii_ann, data_dir):
    """The MPII toolkit's definition written out on its own gt_valid.mat (1-based), against random predictions."""
    from scipy.io import loadmat

    gt = loadmat(str(data_dir / "mpii-mini" / "annot" / "gt_valid.mat"))
    data, results = _mpii_gt_results(mpii_ann)
    rng = np.random.default_rng(0)
    preds = np.array([r["keypoints"] for r in results]).reshape(5, 16, 3)[..., :2] + rng.normal(0, 12, (5, 16, 2))
    for r, p in zip(results, preds):
        r["keypoints"] = np.concatenate([p, np.ones((16, 1))], axis=1).reshape(-1).tolist()
    ours = evaluate_results("mpii", mpii_ann, results)

    annotated = 1 - gt["jnt_missing"]  # (16, N)
    err = np.linalg.norm(preds.transpose(1, 2, 0) + 1 - gt["pos_gt_src"], axis=1)  # back to 1-based
    heads = 0.6 * np.linalg.norm(gt["headboxes_src"][1] - gt["headboxes_src"][0], axis=0)
    names = [str(n[0]) for n in gt["dataset_joints"][0]]

    def pck(thr):
        return 100 * ((err / heads <= thr) * annotated).sum(1) / annotated.sum(1)

    p, count = pck(0.5), annotated.sum(1)
    keep = np.array([n not in ("pelv", "thor") for n in names])
    ref = {"Head": p[names.index("head")], "Mean": (p * count)[keep].sum() / count[keep].sum(),
           "Mean@0.1": (pck(0.1) * count)[keep].sum() / count[keep].sum()}
    for group, short in (("Shoulder", "sho"), ("Elbow", "elb"), ("Wrist", "wri"), ("Hip", "hip"),
                         ("Knee", "kne"), ("Ankle", "ank")):
        ref[group] = (p[names.index("l" + short)] + p[names.index("r" + short)]) / 2
    assert ours == pytest.approx(ref, abs=1e-9)
    assert 0 < ours["Mean"] < 100  # the noise costs something: the comparison is not trivial


def test_mpii_results_must_cover_every_person_once(mpii_ann):
    _, results = _mpii_gt_results(mpii_ann)
    with pytest.raises(HrnextError, match="lack 1 of the 5 annotated people"):
        evaluate_results("mpii", mpii_ann, results[1:])
    with pytest.raises(HrnextError, match="two results predict annotation 1"):
        evaluate_results("mpii", mpii_ann, results + results[:1])
    # An id of another type, or of another image's person (was: a TypeError traceback; a string was
    # "not in the annotation file"; another image's person scored silently).
    for bad, message in (([1], r"annotation_id must be an integer, got list"),
                         ("1", r"annotation_id is a string \('1'\) but ids are JSON numbers")):
        with pytest.raises(HrnextError, match=message):
            evaluate_results("mpii", mpii_ann, [{**results[0], "annotation_id": bad}, *results[1:]])
    other = next(r["image_id"] for r in results if r["image_id"] != results[0]["image_id"])
    with pytest.raises(HrnextError, match=f"result 0 names image {other}, but annotation 1 is a person of image"):
        evaluate_results("mpii", mpii_ann, [{**results[0], "image_id": other}, *results[1:]])
    del results[0]["annotation_id"]
    with pytest.raises(HrnextError, match="has no annotation_id"):
        evaluate_results("mpii", mpii_ann, results)


def test_posetrack_shifted_joint_ap_is_hand_computed(posetrack_ann):
    data = json.loads(posetrack_ann.read_text())
    results = [{"image_id": a["image_id"], "keypoints": list(a["keypoints"]), "score": 1.0}
               for a in data["annotations"]]
    lw = J_PT["left_wrist"]
    owners = [i for i, a in enumerate(data["annotations"]) if a["keypoints"][3 * lw + 2] > 0]
    n = len(owners)
    assert n >= 3
    victim = owners[0]
    x, y, w, h = data["annotations"][victim]["bbox_head"]
    for i in owners:  # distinct joint scores: no ties in the ranking (the others have no left wrist)
        results[i]["keypoints"][3 * lw + 2] = 0.5 + 0.01 * i
    # 0.4 x the head diagonal away (the limit is 0.5 x 0.6), in a direction outside the frame's ignore regions.
    image = next(im for im in data["images"] if im["id"] == data["annotations"][victim]["image_id"])
    joint = np.array(results[victim]["keypoints"][3 * lw:3 * lw + 2])
    for step in ([1, 0], [-1, 0], [0, 1], [0, -1]):
        moved = joint + 0.4 * np.hypot(w, h) * np.array(step)
        if not any(inside_polygon(moved[None], xs, ys)[0]
                   for xs, ys in zip(image["ignore_regions_x"], image["ignore_regions_y"])):
            break
    results[victim]["keypoints"][3 * lw:3 * lw + 2] = moved.tolist()
    # Ranked last: n - 1 hits at precision 1, then one miss -> AP = (n - 1) / n.
    results[victim]["keypoints"][3 * lw + 2] = 0.01
    m = posetrack_metrics(data, results)
    assert m["AP_left_wrist"] == pytest.approx(100 * (n - 1) / n)
    assert all(m[f"AP_{name}"] == 100 for name in SCORED_JOINTS if name != "left_wrist")
    assert m["Wrist"] == pytest.approx((100 + 100 * (n - 1) / n) / 2)
    assert m["mAP"] == pytest.approx((14 * 100 + 100 * (n - 1) / n) / 15)
    # Ranked first: the miss comes before every hit; interpolated precision (n - 1) / n at every recall.
    results[victim]["keypoints"][3 * lw + 2] = 0.99
    assert posetrack_metrics(data, results)["AP_left_wrist"] == pytest.approx(100 * ((n - 1) / n) ** 2)


def test_posetrack_tied_scores_rank_the_same_on_every_cpu():
    """NumPy's default argsort orders equal values one way on AVX-512 CPUs and another on AVX2 ones
    (its SIMD sorts), and the order of tied hits and misses moves the AP: ties rank the later entry
    first (poseval's argsort()[::-1] on its small arrays), on every CPU, at every length."""
    for n in (3, 40, 500):  # below and above the sizes where NumPy leaves its insertion sort
        misses_then_hits = np.array([0] * n + [1] * n)
        assert joint_ap(np.ones(2 * n), misses_then_hits, n) == 100  # the hits, later, rank first
        assert joint_ap(np.ones(2 * n), misses_then_hits[::-1].copy(), n) == pytest.approx(50)
        # Ties broken inside a group only: a higher score still ranks first, wherever it stands.
        scores = np.r_[np.full(n, 2.0), np.ones(n)]
        assert joint_ap(scores, misses_then_hits, n) == pytest.approx(50)
    # Many ties among shuffled hits and misses, against the rule written out in Python: rank by score,
    # then by position (later first); interpolated precision (the best at this recall or beyond) summed
    # over the recall steps.
    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 5, 1000).astype(np.float64), rng.integers(0, 2, 1000)
    order = sorted(range(1000), key=lambda i: (-scores[i], -i))
    hits = np.cumsum([labels[i] for i in order])
    total = int(labels.sum()) + 7  # some annotated joints never found
    precision = [h / (k + 1) for k, h in enumerate(hits)]
    best_after = [max(precision[k:]) for k in range(1000)]
    expected = sum(best_after[k] / total for k in range(1000) if labels[order[k]])
    assert joint_ap(scores, labels, total) == pytest.approx(100 * expected, rel=1e-12)


def _frame(ignore=None):
    image = {"id": 1, "file_name": "f.jpg", "is_labeled": True}
    if ignore:
        image["ignore_regions_x"], image["ignore_regions_y"] = [ignore[0]], [ignore[1]]
    pose = np.zeros((17, 3))
    pose[[J_PT[n] for n in SCORED_JOINTS]] = [[100 + 5 * k, 100 + 7 * k, 1] for k in range(15)]
    ann = {"id": 1, "image_id": 1, "keypoints": pose.reshape(-1).tolist(), "bbox_head": [90, 90, 30, 40]}
    return {"images": [image], "annotations": [ann]}, pose


def test_posetrack_ignore_regions_drop_people_strictly_inside():
    gt, pose = _frame(ignore=([500, 700, 700, 500], [500, 500, 700, 700]))
    stray = pose.copy()
    stray[stray[:, 2] > 0, :2] += 450  # every joint inside the region (550..620, 550..648)
    results = [{"image_id": 1, "keypoints": pose.reshape(-1).tolist(), "score": 1},
               {"image_id": 1, "keypoints": stray.reshape(-1).tolist(), "score": 1}]
    results[1]["keypoints"][2::3] = [2.0 if v else 0 for v in results[1]["keypoints"][2::3]]  # ranked first
    assert posetrack_metrics(gt, results)["mAP"] == 100  # ignored, not a false positive
    gt_open, _ = _frame()
    assert posetrack_metrics(gt_open, results)["mAP"] == pytest.approx(50)  # a miss ranked first: 1 x 1/2
    # Unannotated frames are not scored; predictions there cost nothing.
    gt_open["images"].append({"id": 2, "file_name": "g.jpg", "is_labeled": False})
    results.append({"image_id": 2, "keypoints": pose.reshape(-1).tolist(), "score": 1})
    assert posetrack_metrics(gt_open, results[:1] + results[2:])["mAP"] == 100


def test_inside_polygon_excludes_the_boundary_and_uses_even_odd():
    square = ([0, 10, 10, 0], [0, 0, 10, 10])
    points = np.array([[5, 5], [0, 5], [10, 10], [5, 0], [11, 5], [-1e-9, 5], [1e-9, 5]], dtype=float)
    assert inside_polygon(points, *square).tolist() == [True, False, False, False, False, False, True]
    # A ring that winds twice over [4, 6]^2 (two nested squares joined): even-odd leaves the inner one out.
    xs = [0, 10, 10, 0, 0, 4, 4, 6, 6, 4, 4, 0]
    ys = [0, 0, 10, 10, 5, 5, 6, 6, 4, 4, 5, 5]
    assert inside_polygon(np.array([[5.0, 5.5], [2.0, 2.0]]), xs, ys).tolist() == [False, True]
