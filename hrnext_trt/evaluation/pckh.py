"""MPII PCKh, as the MPII Human Pose toolkit (``evaluatePCKh.m``) and HRNet's evaluation define it.

For every annotated joint of every person: the prediction is correct when its distance to the
ground truth is at most ``threshold`` x head size, the head size being 0.6 x the diagonal of the
person's annotated head box (the toolkit's ``SC_BIAS``). Per joint, PCKh = 100 x correct /
annotated (all annotated joints count, occluded ones too). Reported: Head (head top), Shoulder,
Elbow, Wrist, Hip, Knee, Ankle (each the mean of the left and right joints' PCKh), Mean (correct /
annotated over all joints but pelvis and thorax, which the standard evaluation leaves out) and
Mean@0.1 (the same at threshold 0.1).

Mean@0.1 is the toolkit's PCKh at 0.1 (``range = 0:0.01:0.5``, MATLAB's ``range(11)``). HRNet's
Python port reads row 11 of its 0-based copy of that range, which is 0.11; this module keeps the
toolkit's 0.1 and says so rather than copy the off-by-one.

Predictions are scored per annotated person: each result carries ``annotation_id``, the ``id``
of the converted person annotation it predicts; coordinates are compared in the converted
file's 0-based frame (the toolkit's 1-based comparison differs by the same +1 on both sides).
"""

from __future__ import annotations

import numpy as np

from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import MPII

SC_BIAS = 0.6  # head size = SC_BIAS x head-box diagonal (MPII toolkit)
THRESHOLD = 0.5
LOW_THRESHOLD = 0.1
EXCLUDED_FROM_MEAN = ("pelvis", "thorax")
GROUPS = {"Head": ("head_top",), "Shoulder": ("left_shoulder", "right_shoulder"),
          "Elbow": ("left_elbow", "right_elbow"), "Wrist": ("left_wrist", "right_wrist"),
          "Hip": ("left_hip", "right_hip"), "Knee": ("left_knee", "right_knee"),
          "Ankle": ("left_ankle", "right_ankle")}
PCKH_METRICS = (*GROUPS, "Mean", "Mean@0.1")


def pckh_errors(gt_data: dict, results: list[dict], source: str = "results") -> tuple[np.ndarray, np.ndarray]:
    """Head-normalised errors (N, J) of the predictions and the annotated mask (N, J), one row per
    annotated person of ``gt_data`` (the converted COCO-format MPII file), in its order."""
    joints = MPII.num_joints
    annotations = gt_data["annotations"]
    image_of = {ann["id"]: ann["image_id"] for ann in annotations}
    predicted: dict[int, np.ndarray] = {}
    for i, res in enumerate(results):
        if "annotation_id" not in res:
            raise HrnextError(f"{source}: result {i} has no annotation_id (MPII is scored per annotated person: give "
                              "each result the id of the person annotation it predicts)")
        ann_id = res["annotation_id"]
        if ann_id in predicted:
            raise HrnextError(f"{source}: two results predict annotation {ann_id}; MPII takes one per person")
        if ann_id not in image_of:
            raise HrnextError(f"{source}: annotation_id {ann_id} is not in the annotation file: were these results "
                              "made for another split?")
        if res.get("image_id", image_of[ann_id]) != image_of[ann_id]:
            raise HrnextError(f"{source}: result {i} names image {res['image_id']}, but annotation {ann_id} is a person "
                              f"of image {image_of[ann_id]}: were the ids mixed up?")
        predicted[ann_id] = np.asarray(res["keypoints"], dtype=np.float64).reshape(joints, 3)[:, :2]
    missing = [ann["id"] for ann in annotations if ann["id"] not in predicted]
    if missing:
        raise HrnextError(f"{source} lack {len(missing)} of the {len(annotations)} annotated people (first: annotation "
                          f"{missing[0]}): MPII scores every annotated person")
    errors = np.zeros((len(annotations), joints))
    annotated = np.zeros((len(annotations), joints), dtype=bool)
    for n, ann in enumerate(annotations):
        if "head_box" not in ann:
            raise HrnextError(f"annotation {ann['id']} has no head_box: convert the split with its gt_*.mat (HRNet JSON) "
                              "or from the release .mat")
        x1, y1, x2, y2 = (float(v) for v in ann["head_box"])
        head_size = SC_BIAS * np.linalg.norm([x2 - x1, y2 - y1])
        gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(joints, 3)
        annotated[n] = gt[:, 2] > 0
        errors[n] = np.linalg.norm(predicted[ann["id"]] - gt[:, :2], axis=1) / head_size
    return errors, annotated


def pckh_per_joint(errors: np.ndarray, annotated: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """PCKh in percent per joint (J,) at ``threshold`` and the annotated count per joint (J,)."""
    count = annotated.sum(axis=0)
    correct = ((errors <= threshold) & annotated).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * correct / count, count


def pckh_metrics(gt_data: dict, results: list[dict], source: str = "results") -> dict[str, float]:
    """``Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1`` in percent."""
    errors, annotated = pckh_errors(gt_data, results, source)
    index = {name: j for j, name in enumerate(MPII.keypoint_names)}
    pckh, count = pckh_per_joint(errors, annotated, THRESHOLD)
    metrics = {group: float(np.mean([pckh[index[n]] for n in names])) for group, names in GROUPS.items()}
    in_mean = np.array([n not in EXCLUDED_FROM_MEAN for n in MPII.keypoint_names])
    weight = np.where(in_mean, count, 0) / count[in_mean].sum()
    metrics["Mean"] = float(np.nansum(pckh * weight))
    low, _ = pckh_per_joint(errors, annotated, LOW_THRESHOLD)
    metrics["Mean@0.1"] = float(np.nansum(low * weight))
    return metrics
