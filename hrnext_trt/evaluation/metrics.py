"""Keypoint AP/AR of a COCO-format results list, by each dataset's reference evaluator.

- COCO and OCHuman: pycocotools' ``COCOeval(..., "keypoints")`` with COCO's sigmas (mmpose's
  OCHuman protocol scores OCHuman's annotations exactly like COCO).
- CrowdPose: xtcocotools' ``COCOeval(..., "keypoints_crowd", sigmas, use_area=False)``, which
  reproduces the CrowdPose benchmark's own ``crowdposetools``: OKS area = 0.53 x box area, people
  without visible joints ignored, and AP easy/medium/hard over images split by ``crowdIndex``
  at 0.2 and 0.8 (the thresholds the benchmark's code uses).
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
import numpy as np

from hrnext_trt.data.files import read_json
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta, get_meta

COCO_METRICS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
CROWDPOSE_METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")


def evaluate_results(dataset_name: str, ann_file: str | Path, results: list[dict] | str | Path) -> dict[str, float]:
    """Metrics of keypoint ``results`` (a list of result dicts or a JSON file) against ``ann_file``.

    Keys: ``AP, AP50, AP75, AR`` and more; ``AP_easy, AP_medium, AP_hard`` for CrowdPose.
    """
    meta = get_meta(dataset_name)
    ann_file = Path(ann_file)
    gt_data = read_json(ann_file, f"{meta.name} annotation file")
    if not isinstance(gt_data, dict) or not isinstance(gt_data.get("images"), list):
        raise HrnextError(f"annotation file {ann_file} is not a COCO keypoint file (needs an 'images' list)")
    results = read_results(results, meta, {int(im["id"]) for im in gt_data["images"]})
    names = CROWDPOSE_METRICS if meta.eval_mode == "crowdpose" else COCO_METRICS
    if not results:
        return {name: 0.0 for name in names}
    # Both libraries print progress to stdout; keep it out of the caller's (e.g. --json) output.
    with contextlib.redirect_stdout(io.StringIO()):
        if meta.eval_mode == "crowdpose":
            stats = _crowdpose_stats(ann_file, gt_data, results, meta)
        else:
            stats = _coco_stats(gt_data, results, meta)
    return {name: float(value) for name, value in zip(names, stats)}


def read_results(results: list[dict] | str | Path, meta: KeypointMeta, image_ids: set[int]) -> list[dict]:
    """A checked copy of keypoint ``results`` (a list or a JSON file) for ``image_ids`` of ``meta``'s dataset."""
    if isinstance(results, (str, Path)):
        source = f"results file {results}"
        results = read_json(results, "results file")
    else:
        source = "results"
        results = copy.deepcopy(results)  # the COCO tools add fields to every result
    if not isinstance(results, list):
        raise HrnextError(f"{source} must be a JSON list of {{image_id, category_id, keypoints, score}} objects")
    for i, res in enumerate(results):
        if not isinstance(res, dict) or not {"image_id", "keypoints", "score"} <= res.keys() \
                or not isinstance(res["keypoints"], list):
            raise HrnextError(f"{source}: result {i} lacks image_id, a keypoints list or score")
        n = len(res["keypoints"])
        if n != 3 * meta.num_joints:
            raise HrnextError(f"{source} has {n // 3 if n % 3 == 0 else n / 3:g} keypoints per person but "
                              f"{meta.name} has {meta.num_joints}: were these results made for another dataset?")
        if res["image_id"] not in image_ids:
            raise HrnextError(f"{source}: image_id {res['image_id']} is not in the annotation file: were these "
                              "results made for another dataset or split?")
        res.setdefault("category_id", 1)
    return results


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
