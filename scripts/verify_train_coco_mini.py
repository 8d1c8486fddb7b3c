"""Train the coco-mini demo preset on this machine and print the time it took and the AP it reached.

    python scripts/verify_train_coco_mini.py [--work-dir DIR] [--cfg-options KEY=VALUE ...]

Not a CI test (minutes of CPU): the check that the demo's training step really learns. The AP is
scored on coco-mini's training images (ground-truth boxes), as the preset says.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hrnext_trt.models import read_checkpoint
from hrnext_trt.training import load_config, train
from hrnext_trt.training.checkpointing import find_latest_checkpoint

PRESET = Path(__file__).resolve().parents[1] / "train" / "presets" / "coco_mini_demo.yaml"
TARGET_AP = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--cfg-options", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--time-budget-s", type=float, default=None)
    args = parser.parse_args()

    cfg = load_config(PRESET, args.cfg_options)
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.work_dir or Path(tmp)
        start = time.perf_counter()
        best = train(cfg, work_dir, time_budget_s=args.time_budget_s)
        seconds = time.perf_counter() - start
        last = read_checkpoint(find_latest_checkpoint(work_dir))
        ap, best_epoch = read_checkpoint(best)["best_ap"], read_checkpoint(best)["best_epoch"]
    print(f"preset {PRESET.name}: {last['epoch']} epochs, {last['iteration']} iterations in {seconds:.0f} s; "
          f"best AP {ap:.3f} at epoch {best_epoch} on coco-mini train ({'PASS' if ap >= TARGET_AP else 'FAIL'}"
          f": target {TARGET_AP})")
    return 0 if ap >= TARGET_AP else 1


if __name__ == "__main__":
    sys.exit(main())
