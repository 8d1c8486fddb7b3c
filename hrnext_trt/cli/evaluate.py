"""``hrnext-trt evaluate``: score a COCO-format keypoint results file."""

from __future__ import annotations

import json

import click

from hrnext_trt.cli.params import DATASET
from hrnext_trt.evaluation import evaluate_results


@click.command("evaluate")
@click.option("--dataset", "dataset", type=DATASET, required=True,
              help="Which protocol scores the results.")
@click.option("--ann", "ann_file", type=click.Path(dir_okay=False), required=True,
              help="The dataset's keypoint annotation file (ground truth).")
@click.option("--results", "results_file", type=click.Path(dir_okay=False), required=True,
              help="JSON list of {image_id, category_id, keypoints, score} (MPII: + annotation_id).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the metric names as keys.")
def command(dataset: str, ann_file: str, results_file: str, as_json: bool) -> None:
    """Score a COCO-format keypoint results file: COCO/OCHuman/CrowdPose AP, MPII PCKh (percent),
    PoseTrack per-joint AP and mAP (percent, poseval's definitions)."""
    metrics = evaluate_results(dataset, ann_file, results_file)
    if as_json:
        # "Nothing of this kind to score" as trt-eval's reports say it: null (NaN, poseval's mark, is not
        # JSON; -1 is the COCO tools' mark, e.g. no easy CrowdPose image, and no score).
        click.echo(json.dumps({k: None if v != v or v < 0 else v for k, v in metrics.items()}))
        return
    click.echo(f"{dataset} keypoints: {results_file}")
    width = max(len(name) for name in metrics)
    for name, value in metrics.items():
        # -1 is the COCO tools' mark for "no such case" (e.g. no easy CrowdPose image), NaN poseval's.
        shown = f"{value:7.4f}" if value >= 0 else "    n/a  (nothing of this kind to score)"
        click.echo(f"  {name:<{width}}  {shown}")
