"""FP16 and INT8 ONNX from the simplified FP32 graph, by NVIDIA ModelOpt.

Precision lives in the ONNX, not in the TensorRT builder (TensorRT 11 has no FP16/INT8 flags or
calibrators; strongly typed networks on TensorRT 10 read it the same way):

- FP16: AutoCast converts every node to float16 except the op types of ``KEEP_FP32`` (LayerNorm's
  variance and the global means of the DKA attention, whose float16 sums can overflow) and
  initializers beyond float16's range. Inputs and outputs stay float32.
- INT8: ModelOpt's post-training quantization inserts explicit Q/DQ pairs (per-channel weights,
  per-tensor activations) calibrated on real crops; what it does not quantize stays float32
  (``high_precision_dtype="fp32"``). Its float16 option runs the same O(nodes^2) cast clean-up
  as AutoCast on a graph that Q/DQ made twice as large (over 10 min for hrnext_s here), and
  it clamps Q/DQ scales below float16's smallest value (6e-8), which breaks tensors of small range.
  Its ``entropy`` calibration is ONNX Runtime's histogram calibrator with 128 bins for 128
  quantized levels: the KL search has one candidate per range that a later calibration batch adds
  beyond the first batch's, so over one batch it equals ``max`` (``calibration_batch`` gives the
  batch, so the count of batches). A 2048-bin search, as TensorRT's entropy calibrator, was measured and not
  taken: 20x the time for no better held-out error (export/README.md).

Both passes scale with the node count; they run on the onnxslim-simplified graph (see simplify.py).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from hrnext_trt.contract import unavailable_reason

log = logging.getLogger(__name__)

# FP16: reductions whose float16 accumulation can overflow or lose precision; cheap, so kept in float32.
KEEP_FP32 = ("LayerNormalization", "ReduceMean")
# The calibrator keeps every calibrated activation of one step in memory (hrnext_s: ~1.8 GB of
# activations per 256x192 crop): steps hold as many crops as fit this budget, at most 8.
CALIB_MEMORY_BUDGET = 4 << 30
CALIB_BATCH_MAX = 8


def activation_bytes_per_crop(model) -> int:
    """Bytes of all intermediate float tensors for one crop, from ONNX shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    total = 0
    for value in inferred.graph.value_info:
        tensor = value.type.tensor_type
        if tensor.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            # The batch axis (symbolic) counts as 1; the element size is taken as 4 bytes (an upper bound).
            total += 4 * int(np.prod([d.dim_value or 1 for d in tensor.shape.dim]))
    return max(total, 1)


def calibration_batch(src: Path, crops: int, per_crop: int | None = None) -> int:
    """Crops per calibration step: ModelOpt runs ``crops // batch`` steps (the ONNX batch axis is
    dynamic), each holding every calibrated activation of its crops in memory. ``per_crop``: the
    file's ``activation_bytes_per_crop``, where the caller has it (shape inference of a large graph
    takes seconds)."""
    import onnx

    if per_crop is None:
        per_crop = activation_bytes_per_crop(onnx.load(str(src), load_external_data=False))
    return int(np.clip(CALIB_MEMORY_BUDGET // per_crop, 1, min(CALIB_BATCH_MAX, crops)))


def calibration_providers() -> list[str]:
    """ModelOpt's execution-provider names: the GPU when onnxruntime can use one, else the CPU."""
    return ["cuda:0", "cpu"] if unavailable_reason("onnxruntime", "cuda") is None else ["cpu"]


@contextlib.contextmanager
def _quiet_modelopt():
    """Silence ModelOpt's per-node logging and warnings and ONNX Runtime's calibration prints and
    progress bars: the export prints its own progress, and what the warnings are about (casts,
    values below float16's range) is measured by the held-out accuracy check every export prints.
    Failures still raise with their message."""
    import io
    import logging

    loggers = [logging.getLogger(name) for name in ("modelopt", "autocast")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def convert_fp16(src: Path):
    """``src`` (FP32 ONNX) -> mixed FP16/FP32 ``onnx.ModelProto`` by AutoCast.

    AutoCast's optional range check (``data_max``) runs the model with every intermediate tensor
    as an output and copies them all: about 1.8 GB per crop for hrnext_s at 256x192. It is off;
    what it guards against is covered by ``KEEP_FP32`` and by the held-out accuracy check that
    every export runs on the result.
    """
    from modelopt.onnx.autocast import configure_logging, convert_to_mixed_precision

    configure_logging("ERROR")
    with _quiet_modelopt():
        return convert_to_mixed_precision(
            str(src),
            low_precision_type="fp16",
            keep_io_types=True,
            op_types_to_exclude=list(KEEP_FP32),
            data_max=np.inf,
        )


def quantize_int8(src: Path, crops: np.ndarray, method: str = "entropy", batch: int | None = None):
    """``src`` (FP32 ONNX) -> ``onnx.ModelProto`` with INT8 Q/DQ calibrated on ``crops``, ``batch`` crops a
    step (default: ``calibration_batch``).

    ``method``: ``entropy`` (ModelOpt's default: KL clipping of what later batches add, see above) or ``max``
    (the largest value seen: no clipping)."""
    import onnx
    from modelopt.onnx.quantization import quantize

    batch = batch or calibration_batch(src, len(crops))
    if method == "entropy" and len(crops) < 2 * batch:
        log.warning("entropy calibration over one batch of %d crops equals max calibration (ModelOpt's entropy "
                    "clips only the ranges later batches add): give at least %d crops (--calib-images) for it to "
                    "differ", len(crops), 2 * batch)
    height, width = crops.shape[2:]
    with tempfile.TemporaryDirectory(prefix="hrnext_int8_") as tmp, _quiet_modelopt():
        out = Path(tmp) / "model_int8.onnx"
        quantize(
            str(src),
            quantize_mode="int8",
            calibration_data=np.ascontiguousarray(crops),
            calibration_method=method,
            calibration_shapes=f"images:{batch}x3x{height}x{width}",
            calibration_eps=calibration_providers(),
            high_precision_dtype="fp32",
            output_path=str(out),
            log_level="WARNING",
        )
        return onnx.load(str(out))
