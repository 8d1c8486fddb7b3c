"""The model description every exported ONNX carries: ``ModelSpec.to_dict()`` and the file's precision,
as one JSON under the metadata key ``hrnext_trt`` (``contract.METADATA_KEY``).

A deployed file then says by itself which crop it takes (input size, mean/std), which joints
it predicts (dataset, flip pairs) and at which precision, without its checkpoint. Read back by
``hrnext_trt.runners.onnxruntime.read_onnx_metadata`` (the deployment side).
"""

from __future__ import annotations

import json

from hrnext_trt.contract import METADATA_KEY
from hrnext_trt.model_spec import ModelSpec


def set_onnx_metadata(model, spec: ModelSpec, precision: str, extra: dict | None = None) -> None:
    """Write (or replace) the ``hrnext_trt`` entry of an ``onnx.ModelProto`` in place; ``extra``: what an
    INT8/FP16 file adds (its calibration, its precision plan)."""
    for i, prop in reversed(list(enumerate(model.metadata_props))):
        if prop.key == METADATA_KEY:
            del model.metadata_props[i]
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({**spec.to_dict(), "precision": precision, **(extra or {})}, sort_keys=True)
