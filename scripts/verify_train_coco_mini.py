"""Train the coco-mini demo preset on this machine and print the time it took and the AP it reached.

    OMP_NUM_THREADS=1 python scripts/verify_train_coco_mini.py [--work-dir DIR] [--time-budget-s S]
        [--cfg-options KEY=VALUE ...]

Not a CI test (minutes of CPU): the check that the demo's training really learns. The AP is
scored on coco-mini's training images with ground-truth boxes and the preset's flip test (the
setting ``trt-eval`` and the demo use too), so it measures a fit of the training set. Exits 0 when
the best AP reaches 0.45 (what the demo's table must show on every machine). CPU timings depend
on the machine's load: the 1-minute load average at the end is printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from hrnext_trt.models import read_checkpoint
from hrnext_trt.training import load_config, read_log, train
from hrnext_trt.training.checkpointing import find_latest_checkpoint

PRESET = Path(__file__).resolve().parents[1] / "train" / "presets" / "coco_mini_demo.yaml"
TARGET_AP = 0.45


def best_val_record(work_dir: Path) -> dict:
    """The ``val`` record of ``log.jsonl`` with the highest AP."""
    return max(read_log(work_dir, "val"), key=lambda r: r["AP"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--cfg-options", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="stop at the first epoch end after which another would not fit (the demo sets none)")
    args = parser.parse_args()

    cfg = load_config(PRESET, args.cfg_options)
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.work_dir or Path(tmp)
        start = time.perf_counter()
        train(cfg, work_dir, time_budget_s=args.time_budget_s)
        seconds = time.perf_counter() - start
        last = read_checkpoint(find_latest_checkpoint(work_dir))
        best = best_val_record(work_dir)
    ap = best["AP"]
    print(f"preset {PRESET.name}: {last['epoch']} epochs, {last['iteration']} iterations in {seconds:.0f} s "
          f"({seconds / max(last['iteration'], 1):.2f} s/iteration, evaluations included; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"best AP {ap:.3f} (AP50 {best['AP50']:.3f}, AP75 {best['AP75']:.3f}) at epoch {best['epoch']} on "
          f"coco-mini train, flip test {'on' if cfg.runtime.flip_test else 'off'}: "
          f"{'PASS' if ap >= TARGET_AP else 'FAIL'} (target {TARGET_AP})")
    return 0 if ap >= TARGET_AP else 1


if __name__ == "__main__":
    sys.exit(main())
