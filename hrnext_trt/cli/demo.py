"""``hrnext-trt demo``: train, export and compare on the bundled data in one command."""

from __future__ import annotations

from pathlib import Path

import click

from hrnext_trt.cli.params import DEVICE, POSITIVE_FLOAT
from hrnext_trt.demo import DemoConfig, run_demo


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"), show_default=True,
              help="Where the checkpoint, export folder, reports, plot and pose images go.")
@click.option("--train-minutes", type=POSITIVE_FLOAT, default=8.0, show_default=True,
              help="Training budget; the run stops at the first epoch end past it.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Skip training and use this coco checkpoint.")
@click.option("--arch", default=None, help="Model arch of a --checkpoint that does not record it (the paper's "
                                           "mmpose files), e.g. hrnext_b.")
@click.option("--joints", "num_joints", type=int, default=None, help="Its joint count (17 for COCO).")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--threads", type=int, default=None, help="Intra-op threads of PyTorch (every stage) and ONNX Runtime.")
def command(out, train_minutes, checkpoint, arch, num_joints, device, threads) -> None:
    """Train a small HRNeXt on the bundled coco-mini, export FP32/FP16/INT8, compare every backend, draw poses."""
    report = run_demo(DemoConfig(out=out, train_minutes=train_minutes, checkpoint=checkpoint, arch=arch,
                                 num_joints=num_joints, device=device, threads=threads))
    click.echo(report.table())
    click.echo(f"reports, plot and pose images: {out}")
