"""``hrnext-trt summary ARCH``: parameters, MACs and a per-stage table."""

from __future__ import annotations

import json

import click

from hrnext_trt.cli.params import INPUT_SIZE


@click.command(name="summary")
@click.argument("arch")
@click.option("--input-size", type=INPUT_SIZE, default="256x192", show_default=True,
              help="HEIGHTxWIDTH of the network input.")
@click.option("--joints", type=click.IntRange(min=1), default=17, show_default=True, help="Heatmap channels.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def command(arch: str, input_size: tuple[int, int], joints: int, as_json: bool) -> None:
    """Parameters and multiply-accumulates of ARCH (hrnext_tiny, hrnext_s, hrnext_b, hrnet_w32, hrnet_w48)."""
    from hrnext_trt.models.complexity import arch_summary, format_summary  # imports torch

    summary = arch_summary(arch, joints, input_size)
    click.echo(json.dumps(summary) if as_json else format_summary(summary))
