"""Keypoint AP/AR of a COCO-format results list, by each dataset's reference evaluator.

- COCO and OCHuman: pycocotools' ``COCOeval(..., "keypoints")`` with COCO's sigmas (mmpose's
  OCHuman protocol scores OCHuman's annotations exactly like COCO).
- CrowdPose: xtcocotools' ``COCOeval(..., "keypoints_crowd", sigmas, use_area=False)``, which
  reproduces the CrowdPose benchmark's own ``crowdposetools``: OKS area = 0.53 x box area, people
  without visible joints ignored, and AP easy/medium/hard over images split by ``crowdIndex``
  at 0.2 and 0.8 (the thresholds the benchmark's code uses).
- MPII: PCKh as the MPII toolkit (``evaluation.pckh``); PoseTrack: per-joint AP and mAP as
  poseval (``evaluation.posetrack``).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
import numpy as np

from hrnext_trt.data.coco_format import check_annotation_file, check_categories, check_results
from hrnext_trt.data.files import read_json
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation.pckh import PCKH_METRICS, pckh_metrics
from hrnext_trt.evaluation.posetrack import POSETRACK_METRICS, posetrack_metrics
from hrnext_trt.keypoints import KeypointMeta, get_meta

COCO_METRICS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
CROWDPOSE_METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")
# Each protocol's headline number (best checkpoint, accuracy deltas between backends).
PRIMARY_METRIC = {"coco": "AP", "crowdpose": "AP", "pckh": "Mean", "posetrack": "mAP"}
# The metrics a protocol reports, in order.
METRIC_NAMES = {"coco": COCO_METRICS, "crowdpose": CROWDPOSE_METRICS, "pckh": PCKH_METRICS,
                "posetrack": POSETRACK_METRICS}


# What each protocol's scorer reads of every annotated person. pycocotools reads the area, CrowdPose's
# scorer takes it from the box; both key people by id and skip those whose num_keypoints is 0
# (KeyErrors inside them where missing). poseval matches by head box (bbox_head, checked where read).
_SCORED_FIELDS = {"coco": ("bbox", "keypoints", "area", "id", "num_keypoints"),
                  "crowdpose": ("bbox", "keypoints", "id", "num_keypoints"),
                  "pckh": ("bbox", "keypoints", "area"), "posetrack": ("keypoints",)}


def metric_in_percent(dataset_name: str) -> bool:
    """Whether a dataset's metrics are percent (0 to 100: MPII's PCKh, poseval's AP, as their toolkits
    print them) rather than a fraction (0 to 1: the COCO tools' AP)."""
    return get_meta(dataset_name).eval_mode in ("pckh", "posetrack")


def format_metric(dataset_name: str, value: float) -> str:
    """A metric's value with its unit: ``0.7312`` (a fraction) or ``90.31 %``."""
    return f"{value:.2f} %" if metric_in_percent(dataset_name) else f"{value:.4f}"


def primary_metric(dataset_name: str) -> str:
    """The headline metric of a dataset's protocol: AP, PCKh ``Mean`` (MPII) or ``mAP`` (PoseTrack)."""
    return PRIMARY_METRIC[get_meta(dataset_name).eval_mode]


def _refuse_release_file(name: str, data, ann_file: Path) -> None:
    """MPII and PoseTrack are scored on converted files: a release file names the conversion."""
    if name == "mpii" and isinstance(data, list) and data and isinstance(data[0], dict) and "joints_vis" in data[0]:
        split = {"valid": "val"}.get(ann_file.stem, ann_file.stem)
        source, out = ann_file, ann_file.parent.parent / "annotations" / f"mpii_{split}.json"
    elif name == "posetrack" and isinstance(data, dict) and ("annolist" in data or (
            isinstance(data.get("annotations"), list) and data["annotations"]
            and not any(isinstance(a, dict) and "area" in a for a in data["annotations"]))):
        source, out = ann_file.parent, ann_file.parent.parent / f"posetrack18_{ann_file.parent.name}.json"
    else:
        return
    raise HrnextError(f"{ann_file} is {name.upper() if name == 'mpii' else 'PoseTrack'}'s release format, not a "
                      f"converted file: convert it first, hrnext-trt convert {name} {source} --out {out}, and pass "
                      "that as --ann")


def evaluate_results(dataset_name: str, ann_file: str | Path, results: list[dict] | str | Path) -> dict[str, float]:
    """Metrics of keypoint ``results`` (a list of result dicts or a JSON file) against ``ann_file``.

    Keys: ``AP, AP50, AP75, AR`` and more; ``AP_easy, AP_medium, AP_hard`` for CrowdPose;
    ``METRIC_NAMES`` of the dataset's protocol (PCKh groups for MPII, poseval's APs for PoseTrack).
    """
    meta = get_meta(dataset_name)
    ann_file = Path(ann_file)
    gt_data = read_json(ann_file, f"{meta.name} annotation file")
    _refuse_release_file(meta.name, gt_data, ann_file)
    check_annotation_file(gt_data, ann_file, meta.num_joints, meta.name,
                          annotation_fields=_SCORED_FIELDS[meta.eval_mode])
    if not gt_data["annotations"]:
        raise HrnextError(f"annotation file {ann_file} holds no annotated people: there is nothing to score against")
    if meta.eval_mode in ("coco", "crowdpose"):
        _check_scored_people(gt_data, ann_file)
    categories = {c.get("id") for c in gt_data.get("categories") or () if isinstance(c, dict)}
    source = f"results file {results}" if isinstance(results, (str, Path)) else "results"
    results = read_results(results, meta, {int(im["id"]) for im in gt_data["images"]}, categories)
    if meta.eval_mode == "pckh":
        return pckh_metrics(gt_data, results, source)
    if meta.eval_mode == "posetrack":
        return posetrack_metrics(gt_data, results)
    names = CROWDPOSE_METRICS if meta.eval_mode == "crowdpose" else COCO_METRICS
    # Both libraries print progress to stdout; keep it out of the caller's (e.g. --json) output.
    with contextlib.redirect_stdout(io.StringIO()):
        if meta.eval_mode == "crowdpose":
            stats = _crowdpose_stats(ann_file, gt_data, results, meta)
        else:
            stats = _coco_stats(gt_data, results, meta)
    return {name: float(value) for name, value in zip(names, stats)}


def _check_scored_people(gt_data: dict, ann_file: Path) -> None:
    """What the COCO tools need of a ground truth beyond the loaders' fields: a ``categories`` list
    and a person they score (neither a crowd region nor without labelled keypoints: those they
    ignore), else every metric would be -1 and the run would measure nothing."""
    check_categories(gt_data, ann_file)
    people = gt_data["annotations"]
    if not any(not a.get("iscrowd") and a.get("num_keypoints", 0) > 0 for a in people):
        raise HrnextError(f"annotation file {ann_file}: none of its {len(people)} people is scored (each is a crowd "
                          "region or has no labelled keypoint), so there is nothing to score against: give the "
                          "split's keypoint annotation file")


def read_results(results: list[dict] | str | Path, meta: KeypointMeta, image_ids: set[int],
                 category_ids: set[int] | None = None) -> list[dict]:
    """A checked copy of keypoint ``results`` (a list or a JSON file) for ``image_ids`` of ``meta``'s dataset:
    one line naming the result and field for a non-finite, non-numeric or missing value, refused when empty."""
    if isinstance(results, (str, Path)):
        source = f"results file {results}"
        results = read_json(results, "results file")
    else:
        source = "results list"
    return check_results(results, source, meta.num_joints, meta.name, image_ids, category_ids)


def _coco_stats(gt_data: dict, results: list[dict], meta: KeypointMeta) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = gt_data
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
    evaluator.params.kpt_oks_sigmas = np.asarray(meta.sigmas)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


def _crowdpose_stats(ann_file: Path, gt_data: dict, results: list[dict], meta: KeypointMeta) -> np.ndarray:
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    if any("crowdIndex" not in im for im in gt_data["images"]):
        raise HrnextError(f"annotation file {ann_file} has images without 'crowdIndex': is it a CrowdPose file?")
    # The easy/medium/hard split re-reads the annotation file by path, so the path is passed too.
    gt = COCO(str(ann_file), ann_data=gt_data)
    evaluator = COCOeval(gt, gt.loadRes(results), "keypoints_crowd", np.asarray(meta.sigmas), use_area=False)
    evaluator.params.useSegm = None
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats
