"""``--calib-study``: how much the calibration choice matters, measured before the export commits to one.

Each choice (ModelOpt's INT8 methods, with a quarter and all of the calibration crops) quantizes
the whole FP32 graph and is judged like every artifact: held-out crops, Q/DQ unfused, against the
PyTorch FP32 heatmaps. One quantization per row: minutes each on a full-size model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hrnext_trt.export.config import CALIB_METHODS
from hrnext_trt.export.precision import activation_bytes_per_crop, calibration_batch, quantize_int8

log = logging.getLogger(__name__)


def study_choices(available: int, methods=CALIB_METHODS) -> list[tuple[str, int]]:
    counts = sorted({max(1, available // 4), available})
    return [(m, n) for m in methods for n in counts]


def calibration_study(src: Path, crops: np.ndarray, evaluate: Callable[[object], dict],
                      choices: list[tuple[str, int]]) -> list[dict]:
    """One row per (method, crops): the held-out agreement of the full INT8 graph calibrated that way."""
    import onnx

    per_crop = activation_bytes_per_crop(onnx.load(str(src), load_external_data=False))  # once for every row
    rows = []
    for i, (method, count) in enumerate(choices, 1):
        log.info("calibration study %d/%d: %s, %d crops", i, len(choices), method, count)
        batch = calibration_batch(src, count, per_crop)
        check = evaluate(quantize_int8(src, crops[:count], method, batch))
        rows.append({"method": method, "crops": count, "batches": count // batch, **check})
    return rows


def format_study(rows: list[dict], heldout: int, source: str) -> str:
    """The study's table; ``source`` says where its crops came from (``calibration.source_label``)."""
    header = f"{'method':<8} {'crops':>6} {'batches':>7} {'rel err':>9} {'kpt px':>7} {'<=2 px':>7}"
    lines = [f"calibration study ({source}), full INT8 on {heldout} held-out crops", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['method']:<8} {r['crops']:>6} {r['batches']:>7} {r['rel_err']:>9.2e} {r['mean_px']:>7.3f} "
                     f"{r['within_2px']:>7.1%}")
    if any(r["method"] == "entropy" and r["batches"] < 2 for r in rows):
        lines.append("* entropy over one calibration batch equals max: ModelOpt's entropy clips only the ranges "
                     "later batches add")
    return "\n".join(lines)
