"""Training speed of finished runs, read from their work dirs' log.jsonl and config.yaml.

    python scripts/train_speed.py WORK_DIR [WORK_DIR ...] [--json PATH] [--skip-epochs 1]

One row per run: batch per GPU, processes and their DDP backend (nccl, gloo; "-" for a plain
process), precision, the median model step (forward, loss, backward and optimizer step, up to
the loss's synchronising read) over the epochs after the first ones
(cuDNN autotuning, allocator growth and torch.compile land there), steps/s and images/s from it,
the median wait for data (does the loader keep up?), and the peak GPU memory of those epochs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from hrnext_trt.errors import HrnextError
from hrnext_trt.reports import Column, Report, check_writable
from hrnext_trt.training import load_config, read_log
from hrnext_trt.training.logging import LOG_NAME
from hrnext_trt.training.work_dir import CONFIG_NAME


def run_speed(work_dir: Path, skip_epochs: int) -> dict:
    log, config = work_dir / LOG_NAME, work_dir / CONFIG_NAME
    if not log.is_file() or not config.is_file():
        raise HrnextError(f"{work_dir} holds no training run ({LOG_NAME} and {CONFIG_NAME}): give a train --work-dir")
    records = read_log(work_dir)
    epochs = [r for r in records if r["kind"] == "epoch" and "step_s" in r]
    if not epochs:
        raise HrnextError(f"{log} has no epoch with step timing: train with this version of hrnext-trt")
    timed = epochs[skip_epochs:] or epochs[-1:]
    start = next((r for r in reversed(records) if r.get("event") == "start"), {})
    batch = load_config(config).data.batch_size
    world = int(start.get("world_size", 1))
    step_s = statistics.median(r["step_s"] for r in timed)
    # Peak memory of the timed epochs: the first ones' also holds cuDNN's trial workspaces of its
    # algorithm search (cudnn.benchmark), which steady training does not need.
    memory = [r["max_memory_mib"] for r in timed if r.get("max_memory_mib") is not None]
    return {"run": work_dir.name, "device": start.get("device"), "precision": start.get("precision"),
            "batch": batch, "world_size": world, "dist_backend": start.get("dist_backend"),
            "epochs_timed": len(timed), "step_ms": 1000 * step_s,
            "steps_per_s": 1 / step_s, "images_per_s": batch * world / step_s,
            "data_wait_ms": 1000 * statistics.median(r["data_wait_s"] for r in timed),
            "max_memory_mib": max(memory) if memory else None}


def speed_report(rows: list[dict], skip_epochs: int) -> Report:
    return Report(
        title="Training speed",
        columns=[Column("run", "run"), Column("device", "device"), Column("precision", "precision"),
                 Column("batch", "batch/GPU"), Column("world_size", "GPUs"), Column("dist_backend", "DDP"),
                 Column("step_ms", "step ms", ".1f"), Column("steps_per_s", "steps/s", ".2f"),
                 Column("images_per_s", "images/s", ".1f"), Column("data_wait_ms", "data wait ms", ".1f"),
                 Column("max_memory_mib", "peak MiB", ".0f")],
        rows=rows,
        footnotes=[f"medians over each run's epochs after its first {skip_epochs} (its last where it has no more)",
                   "step: forward, loss, backward and optimizer step; images/s: batch x GPUs / step; peak MiB: the "
                   "GPU's allocated memory over those epochs; DDP '-': a plain process"],
        meta={"skip_epochs": skip_epochs})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work_dirs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--skip-epochs", type=int, default=1, help="warm-up epochs left out (default 1)")
    args = parser.parse_args()
    try:
        check_writable(args.json, "--json", folder=False)
        rows = [run_speed(w, args.skip_epochs) for w in args.work_dirs]
    except HrnextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    report = speed_report(rows, args.skip_epochs)
    print(report.table())
    if args.json:
        report.write_json(args.json)


if __name__ == "__main__":
    main()
