"""How far each exported artifact is from the PyTorch model, on held-out crops: computed, stored, printed.

Every artifact is compared with the same PyTorch FP32 heatmaps:
- ``max_abs_err``: the largest absolute heatmap difference (the FP32 ONNX check: ~1e-5);
- ``rel_err``: ||test - ref|| / ||ref|| over all heatmaps (the FP16 / INT8 check);
- ``mean_px`` and ``within_2px``: decoded keypoints (``HeatmapCodec.decode``, in crop pixels)
  against PyTorch's: the mean distance and the share of joints within 2 px (half a heatmap cell,
  so "same heatmap peak"), the figure that decides whether accuracy survives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME
from hrnext_trt.data import HeatmapCodec
from hrnext_trt.engines import TensorRTEngine
from hrnext_trt.pipeline import run_batched
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner

CHUNK = 8  # crops per forward pass: bounds peak memory of the large models


def torch_heatmaps(model, images: np.ndarray) -> np.ndarray:
    """The reference: the PyTorch model as loaded (eval mode, its own DKA form), FP32 on the CPU."""
    import torch

    with torch.inference_mode():
        return run_batched(lambda x: model(torch.from_numpy(x)).numpy(), images, CHUNK)


def onnx_heatmaps(path: Path, precision: str, images: np.ndarray) -> np.ndarray:
    """One ONNX file through ONNX Runtime's CPU provider (the project's own runner)."""
    with OnnxRuntimeRunner(path, precision, "cpu") as runner:
        return run_batched(runner.heatmap_fn(), images, CHUNK)


def engine_heatmaps(engine: TensorRTEngine, images: np.ndarray) -> np.ndarray:
    """An active engine over ``images``, in chunks its batch profile admits."""
    profile = engine.batch_profile
    return run_batched(lambda x: engine.infer({INPUT_NAME: x})[OUTPUT_NAME], images,
                       chunk=min(CHUNK, profile["max"]), min_batch=profile["min"])


def agreement(reference: np.ndarray, test: np.ndarray, codec: HeatmapCodec) -> dict:
    ref_xy, _ = codec.decode(reference)
    test_xy, _ = codec.decode(test)
    distance = np.linalg.norm(test_xy - ref_xy, axis=-1)
    return {
        "max_abs_err": float(np.abs(test - reference).max()),
        "rel_err": float(np.linalg.norm(test - reference) / np.linalg.norm(reference)),
        "mean_px": float(distance.mean()),
        "within_2px": float((distance <= 2.0).mean()),
    }


def format_table(rows: list[dict], crops: int) -> str:
    """rows: {"file", "precision", "size", "check"} with check an agreement dict or a reason string."""
    header = (f"{'artifact':<20} {'precision':<9} {'size':>9}  {'max|err|':>9} {'rel err':>9} "
              f"{'kpt dist':>9} {'<=2 px':>7}")
    lines = [f"accuracy vs PyTorch FP32 on {crops} held-out crops", header, "-" * len(header)]
    for row in rows:
        size = f"{row['size'] / 1e6:.1f} MB"
        check = row["check"]
        if isinstance(check, dict):
            numbers = (f"{check['max_abs_err']:>9.2e} {check['rel_err']:>9.2e} {check['mean_px']:>6.2f} px "
                       f"{check['within_2px']:>7.1%}")
        else:
            numbers = f"  {check}"
        lines.append(f"{row['file']:<20} {row['precision']:<9} {size:>9}  {numbers}")
    return "\n".join(lines)


def format_engine_table(manifest: dict) -> str:
    """One line per engine: builder, targets, build time, size and the network's layers by precision."""
    engines = manifest["engines"]
    lines = [f"engines built by {engines['builder']} {engines['version']} for compute capabilities "
             f"{', '.join(engines['targets'])} (layers of the parsed, strongly typed network, by precision)"]
    header = f"{'engine':<20} {'size':>9} {'build':>8} {'layers':>7}  by precision"
    lines += [header, "-" * len(header)]
    for name, entry in manifest["artifacts"].items():
        if entry["kind"] != "tensorrt":
            continue
        build = entry["build"]
        precisions = ", ".join(f"{k} {v}" for k, v in build["network"]["by_precision"].items())
        lines.append(f"{name:<20} {entry['size'] / 1e6:>6.1f} MB {build['seconds']:>6.1f} s "
                     f"{build['network']['layers']:>7}  {precisions}")
    return "\n".join(lines)
