"""``hrnext-trt visualize``: draw predicted or ground-truth poses on a dataset's images."""

from __future__ import annotations

from pathlib import Path

import click

from hrnext_trt.data.datasets import TEST_SPLIT
from hrnext_trt.cli.params import DATASET, FRACTION
from hrnext_trt.visualize import VisualizeConfig, visualize


@click.command("visualize")
@click.option("--dataset", type=DATASET, required=True)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The dataset's root folder, in its own layout (e.g. data/crowdpose).")
@click.option("--split", default=None, help="Split to draw [default: the dataset's test split].")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="COCO-format keypoint results to draw; without it, the ground truth is drawn.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for the pictures (new or empty, or a previous run's with --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace the pictures of a previous visualize run in --out.")
@click.option("--score-thr", type=FRACTION, default=0.3, show_default=True, help="Skip people scored below this.")
@click.option("--kpt-thr", type=FRACTION, default=0.3, show_default=True, help="Skip joints scored below this.")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Draw at most this many images (>= 1) [default: all].")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
def command(dataset, data_root, split, results, out_dir, overwrite, score_thr, kpt_thr, max_images,
            image_format) -> None:
    """Draw predicted or ground-truth poses on images."""
    config = VisualizeConfig(dataset=dataset, data_root=data_root, split=split or TEST_SPLIT[dataset],
                             out_dir=out_dir, results=results, score_thr=score_thr, kpt_thr=kpt_thr,
                             max_images=max_images, image_format=image_format, overwrite=overwrite)
    written = visualize(config)
    click.echo(f"wrote {len(written)} pictures to {out_dir}")
