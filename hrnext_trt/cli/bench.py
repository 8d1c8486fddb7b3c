"""``hrnext-trt bench``: model-only and end-to-end latency of every backend and batch size."""

from __future__ import annotations

from pathlib import Path

import click

from hrnext_trt.benchmark import BenchConfig, run_bench
from hrnext_trt.cli.params import (BACKEND_LIST, BATCH_SIZES, COUNT, DATASET, DEVICE, EXPORT_PRECISION_LIST,
                                   INPUT_SIZE, POSITIVE_INT, TORCH_PRECISION_LIST, model_record_options)
from hrnext_trt.contract import BACKENDS
from hrnext_trt.errors import HrnextError


@click.command("bench")
@click.argument("model")
@model_record_options
@click.option("--engines", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Export folder to time (default: export MODEL to a temporary folder first).")
@click.option("--backends", type=BACKEND_LIST, default=None,
              help="Comma-separated: pytorch,onnxruntime,tensorrt (default: all).")
@click.option("--batch", "batches", type=BATCH_SIZES, default="1,8,32", show_default=True,
              help="Comma-separated batch sizes.")
@click.option("--input-size", type=INPUT_SIZE, default=None,
              help="Crop size (default: the checkpoint's, else 256x192).")
@click.option("--dataset", type=DATASET, default=None,
              help="Joints of the head when MODEL is an arch name [default: crowdpose].")
@click.option("--export-precisions", type=EXPORT_PRECISION_LIST, default=None,
              help="Precisions of the temporary export (without --engines): fp32[,fp16][,int8] [default: fp32].")
@click.option("--torch-precisions", type=TORCH_PRECISION_LIST, default=None,
              help="PyTorch rows, each a precision (fp32, fp16, bf16) with optional +flags: tf32, channels_last, "
                   "compile, compile-ro (reduce-overhead: CUDA graphs), grouped or static (DKA form); e.g. "
                   "fp32,fp32+tf32,fp16+channels_last+compile-ro (default: fp32 on the CPU, fp32,fp16 on CUDA).")
@click.option("--compile", "torch_compile", is_flag=True, help="Run the PyTorch rows through torch.compile.")
@click.option("--iters", type=POSITIVE_INT, default=50, show_default=True, help="Timed calls per row.")
@click.option("--warmup", type=COUNT, default=10, show_default=True, help="Untimed calls before them.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--threads", type=POSITIVE_INT, default=None, help="Intra-op threads of PyTorch and ONNX Runtime.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the report as JSON here.")
def command(model, arch, num_joints, engines, backends, batches, input_size, dataset, export_precisions,
            torch_precisions, torch_compile, iters, warmup, device, threads, json_path) -> None:
    """Latency of MODEL (a checkpoint, or an arch name with random weights) on every backend and batch size."""
    from hrnext_trt.models import ARCHS  # torch side: imported when the command runs

    # Options that would change nothing are refused, not silently ignored.
    if export_precisions is not None and engines is not None:
        raise HrnextError("--export-precisions sets what a temporary export makes, and --engines times the folder's "
                          "files: drop one")
    if (torch_precisions is not None or torch_compile) and backends is not None and "pytorch" not in backends:
        raise HrnextError("--torch-precisions and --compile set the PyTorch rows, and --backends has no pytorch: "
                          "add it, or drop them")
    if dataset is not None and model not in ARCHS:
        raise HrnextError(f"--dataset picks the head's joints of an arch name, and {model} is a checkpoint, which "
                          "records its own (or --joints, for the paper's files): drop --dataset")
    config = BenchConfig(
        model=model, arch=arch, num_joints=num_joints, engines=engines, backends=backends or BACKENDS,
        batches=batches, input_size=input_size, dataset=dataset or "crowdpose",
        export_precisions=export_precisions or ("fp32",),
        torch_precisions=torch_precisions, torch_compile=torch_compile, iters=iters, warmup=warmup, device=device,
        threads=threads, json=json_path)
    report = run_bench(config)
    click.echo(report.table())
    if json_path:
        click.echo(f"wrote {json_path}")
