"""PyTorch -> ``model.onnx``: FP32, dynamic batch, input ``images``, output ``heatmaps``, simplified, checked.

The TorchScript exporter (``dynamo=False``) is used on purpose: on hrnext_s it exports in about a
third of the time of the torch.export-based exporter (42 s vs 128 s + 10 s here), and the graph
both produce is the same after onnxslim. The model must be in its export form
(``hrnext_trt.models.prepare_for_export``: eval mode, static DKA).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME
from hrnext_trt.errors import raise_storage_error
from hrnext_trt.export.metadata import set_onnx_metadata
from hrnext_trt.export.simplify import simplify
from hrnext_trt.model_spec import ModelSpec


def export_onnx(model, path: Path, spec: ModelSpec, opset: int) -> dict:
    """Write ``path`` (simplified); returns :func:`save_checked`'s facts plus the node count before onnxslim."""
    import onnx
    import torch

    # Batch 2, not 1: a batch-1 trace could fold the batch axis into a constant somewhere.
    dummy = torch.zeros(2, 3, *spec.input_size)
    with tempfile.TemporaryDirectory(prefix="hrnext_onnx_") as tmp, warnings.catch_warnings():
        # The tracer warns that spatial-size tests become constants: intended, H and W are fixed.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter": chosen, see above
        raw_path = Path(tmp) / "traced.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model, (dummy,), str(raw_path),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )
        traced = onnx.load(str(raw_path))
    return {"traced_nodes": len(traced.graph.node), **save_checked(simplify(traced), path, spec, "fp32")}


def save_checked(model, path: Path, spec: ModelSpec, precision: str, extra: dict | None = None) -> dict:
    """Every exported ONNX file goes through here: metadata written, ONNX checker passed, saved.
    Returns {"opset", "nodes"} of the saved graph for the manifest."""
    import onnx

    set_onnx_metadata(model, spec, precision, extra)
    onnx.checker.check_model(model, full_check=True)
    try:
        onnx.save(model, str(path))
    except OSError as exc:
        raise_storage_error(exc, path)
        raise
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": opset, "nodes": len(model.graph.node)}
