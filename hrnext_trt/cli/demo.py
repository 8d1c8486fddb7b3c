"""``hrnext-trt demo``: train, export and compare on the bundled data in one command."""

from __future__ import annotations

from pathlib import Path

import click

from hrnext_trt.cli.params import DEVICE, POSITIVE_INT, model_record_options
from hrnext_trt.demo import DemoConfig, run_demo


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True,
              help="Where the checkpoint, export folder, reports, plot and pose images go.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Skip training and use this coco checkpoint.")
@model_record_options
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--threads", type=POSITIVE_INT, default=None,
              help="Intra-op threads of PyTorch (every stage) and ONNX Runtime [default: one per core]; on a machine "
                   "busy with other work, 1 avoids threads waiting on each other.")
def command(out, checkpoint, arch, num_joints, device, threads) -> None:
    """Train a small HRNeXt on the bundled coco-mini, export FP32/FP16/INT8, compare every backend, draw poses.

    Training always runs the preset's whole recipe (no time limit), so the AP does not depend on the
    machine's speed: a few minutes on two CPU cores, seconds on a GPU.
    """
    result = run_demo(DemoConfig(out=out, checkpoint=checkpoint, arch=arch, num_joints=num_joints, device=device,
                                 threads=threads))
    click.echo(result.report.table())  # its footnotes say how much of the recipe the model trained
    click.echo(f"reports, plot and pose images: {out}")
