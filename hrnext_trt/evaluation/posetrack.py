"""PoseTrack per-joint AP and mAP, as the benchmark's evaluation (poseval, ``evaluateAP``) defines them.

poseval (github.com/leonid-pishchulin/poseval, ``py/eval_helpers.py`` and ``py/evaluateAP.py``)
is not on PyPI; its definitions, implemented here on the converted COCO-format file:

- Frames: those with at least one annotated person (``cleanupData``). Joints: poseval's 15
  (PoseTrack 2018's 17 without the never-annotated ears). A joint of a person exists unless it
  is ``(0, 0, 0)`` (``Person.to_old``); for a prediction the third value is its score.
- Ignore regions: in a frame with them, every ground-truth and predicted joint strictly inside
  a region polygon is dropped, and a person left without joints is dropped
  (``removeIgnoredPoints``; shapely's ``Polygon.contains``: interior only, even-odd rule).
- Matching, per frame (``assignGTmulti``): a predicted joint is correct for a ground-truth person
  when its distance is at most 0.5 x head size (0.6 x the diagonal of ``bbox_head``); PCKh of a
  pair = correct joints / that person's annotated joints. Each prediction keeps its best person
  only (first on ties), each person then takes its best remaining prediction; every predicted
  joint becomes a detection with its score, labelled by correctness when its pose is matched,
  false otherwise.
- AP per joint (``computeMetrics``, ``computeRPC``, ``VOCap``): detections of all frames sorted
  by score (descending), precision and recall against the joint's annotated count, VOC
  area under the interpolated precision-recall curve, x 100. A joint without detections has AP 0;
  one without ground truth has no AP (NaN). mAP = mean of the joints' APs that are not NaN.
  Groups as poseval's table: Head (head_top, head_bottom, nose), Shoulder, Elbow, Wrist, Hip,
  Knee, Ankle (means of the joints' APs).
"""

from __future__ import annotations

import numpy as np

from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import POSETRACK

DIST_THRESHOLD = 0.5
SC_BIAS = 0.6
# poseval's 15 joints (eval_helpers.Joint order), by this toolkit's names.
SCORED_JOINTS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
                 "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "head_bottom", "nose",
                 "head_top")
GROUPS = {"Head": ("head_top", "head_bottom", "nose"), "Shoulder": ("right_shoulder", "left_shoulder"),
          "Elbow": ("right_elbow", "left_elbow"), "Wrist": ("right_wrist", "left_wrist"),
          "Hip": ("right_hip", "left_hip"), "Knee": ("right_knee", "left_knee"), "Ankle": ("right_ankle", "left_ankle")}
POSETRACK_METRICS = (*GROUPS, "mAP", *(f"AP_{name}" for name in SCORED_JOINTS))
_COLUMNS = np.array([POSETRACK.keypoint_names.index(n) for n in SCORED_JOINTS])


def _points(keypoints) -> tuple[np.ndarray, np.ndarray]:
    """xy (15, 2) and presence (15,) of a flat 17 x 3 keypoint list, in poseval's joint order."""
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(POSETRACK.num_joints, 3)[_COLUMNS]
    present = ~((kpts[:, 0] == 0) & (kpts[:, 1] == 0) & (kpts[:, 2] == 0))
    return kpts, present


def inside_polygon(points: np.ndarray, xs, ys) -> np.ndarray:
    """Which points (N, 2) lie strictly inside the polygon (even-odd rule; the boundary is outside)."""
    px, py = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1 = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crosses = ((y1 > py) != (y2 > py)) & (px < (x2 - x1) * (py - y1) / (y2 - y1) + x1)
    cross = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    on_edge = (cross == 0) & (px >= np.minimum(x1, x2)) & (px <= np.maximum(x1, x2)) \
        & (py >= np.minimum(y1, y2)) & (py <= np.maximum(y1, y2))
    return (crosses.sum(axis=1) % 2 == 1) & ~on_edge.any(axis=1)


def _drop_ignored(people: list[tuple], regions: list[tuple]) -> list[tuple]:
    kept = []
    for person in people:
        xy, present = person[0], person[1].copy()
        for xs, ys in regions:
            present &= ~inside_polygon(xy[:, :2], xs, ys)
        if present.any():
            kept.append((xy, present, *person[2:]))
    return kept


def _frame_detections(gt_people: list[tuple], pr_people: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (K,), labels (K,) and joint ids (K,) of a frame's predicted joints; ``assignGTmulti``."""
    joints = len(SCORED_JOINTS)
    if not pr_people:
        return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=int)
    has_pr = np.array([p[1] for p in pr_people])  # (P, 15)
    scores = np.array([p[0][:, 2] for p in pr_people])
    labels = np.zeros_like(has_pr)
    if gt_people:
        has_gt = np.array([g[1] for g in gt_people])  # (G, 15)
        pr_xy = np.array([p[0][:, :2] for p in pr_people])
        gt_xy = np.array([g[0][:, :2] for g in gt_people])
        head = np.array([g[2] for g in gt_people])
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero-size head box: poseval's inf/nan, no match
            dist = np.linalg.norm(pr_xy[:, None] - gt_xy[None], axis=-1) / head[None, :, None]  # (P, G, 15)
        dist[~(has_pr[:, None] & has_gt[None])] = np.inf
        match = dist <= DIST_THRESHOLD
        pck = match.sum(axis=2).astype(np.float64)
        n_gt = has_gt.sum(axis=1)
        pck = np.where(n_gt[None] > 0, pck / np.maximum(n_gt, 1)[None], pck)
        best = np.argmax(pck, axis=1)
        pck = np.where(np.arange(len(gt_people))[None] == best[:, None], pck, 0)
        pr_to_gt = np.argmax(pck, axis=0)
        pr_to_gt[pck.max(axis=0) == 0] = -1
        for g, p in enumerate(pr_to_gt):
            if p >= 0:
                labels[p] = match[p, g]
    flat = has_pr.reshape(-1)
    return (scores.reshape(-1)[flat], labels.reshape(-1)[flat],
            np.tile(np.arange(joints), len(pr_people))[flat])


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve (poseval's ``VOCap``)."""
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def joint_ap(scores: np.ndarray, labels: np.ndarray, total: float) -> float:
    """AP x 100 of one joint's detections against ``total`` annotated joints (``computeRPC`` + ``VOCap``)."""
    if len(scores) == 0:
        return 0.0
    # poseval's argsort()[::-1], stable: NumPy's default sort orders equal scores differently on AVX-512
    # and AVX2 CPUs, and the order of tied hits and misses moves the AP. Ties rank the later entry
    # first, as the default sort does on arrays of up to 16 (an insertion sort); on longer ones
    # poseval's own AP for tied scores depends on the CPU, and this is the one fixed answer.
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")[::-1]
    true_pos = np.cumsum(labels[order] == 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = true_pos / np.float64(total)
    precision = true_pos / np.arange(1, len(order) + 1)
    return voc_ap(recall, precision) * 100


def posetrack_metrics(gt_data: dict, results: list[dict]) -> dict[str, float]:
    """Head..Ankle, ``mAP`` and ``AP_<joint>`` for poseval's 15 joints (percent) of COCO-format results."""
    predictions: dict[int, list[dict]] = {}
    for res in results:
        predictions.setdefault(res["image_id"], []).append(res)
    by_image: dict[int, list[dict]] = {}
    for ann in gt_data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    all_scores, all_labels, all_joints = [], [], []
    n_gt = np.zeros(len(SCORED_JOINTS))
    for image in gt_data["images"]:
        anns = by_image.get(image["id"])
        if not anns:
            continue  # poseval's cleanupData: frames without annotated people are not scored
        gt_people = []
        for ann in anns:
            if "bbox_head" not in ann:
                raise HrnextError(f"annotation {ann.get('id')} has no bbox_head: PoseTrack's PCKh matching needs the "
                                  "head box (convert the release files with `hrnext-trt convert posetrack`)")
            x, y, w, h = (float(v) for v in ann["bbox_head"])
            xy, present = _points(ann.get("keypoints") or [0] * 3 * POSETRACK.num_joints)
            # As poseval: corners x1 = x, x2 = x + w (not w itself: the rounding is theirs too).
            head = SC_BIAS * np.linalg.norm(np.subtract([x + w, y + h], [x, y]))
            gt_people.append((xy, present, head))
        pr_people = [(*_points(res["keypoints"]),) for res in predictions.get(image["id"], [])]
        regions = list(zip(image.get("ignore_regions_x") or [], image.get("ignore_regions_y") or []))
        if regions:
            gt_people = _drop_ignored(gt_people, regions)
            pr_people = _drop_ignored(pr_people, regions)
        for person in gt_people:
            n_gt += person[1]
        scores, labels, joints = _frame_detections(gt_people, pr_people)
        all_scores.append(scores)
        all_labels.append(labels)
        all_joints.append(joints)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, dtype=bool)
    joints = np.concatenate(all_joints) if all_joints else np.zeros(0, dtype=int)
    ap = np.array([joint_ap(scores[joints == j], labels[joints == j], n_gt[j]) for j in range(len(SCORED_JOINTS))])
    by_name = dict(zip(SCORED_JOINTS, ap))
    metrics = {group: float(np.mean([by_name[n] for n in names])) for group, names in GROUPS.items()}
    metrics["mAP"] = float(np.mean(ap[~np.isnan(ap)])) if (~np.isnan(ap)).any() else float("nan")
    metrics.update({f"AP_{name}": float(value) for name, value in by_name.items()})
    return metrics
