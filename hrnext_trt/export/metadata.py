"""The model description every exported ONNX carries: one JSON under the metadata key ``hrnext_trt``.

A deployed file then says by itself which crop it takes (input size, mean/std), which joints
it predicts (dataset, flip pairs) and at which precision, without its checkpoint.
"""

from __future__ import annotations

import json

from hrnext_trt.contract import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, heatmap_size
from hrnext_trt.data.preprocess import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from hrnext_trt.keypoints import KeypointMeta


def model_metadata(arch: str, num_joints: int, input_size: tuple[int, int], meta: KeypointMeta) -> dict:
    return {
        "arch": arch,
        "num_joints": num_joints,
        "input_size": list(input_size),
        "heatmap_size": list(heatmap_size(input_size)),
        "mean": list(IMAGENET_MEAN_RGB),  # what hrnext_trt.data.preprocess.crop_images normalises with
        "std": list(IMAGENET_STD_RGB),
        "color": "rgb",
        "dataset": meta.name,
        "flip_pairs": [list(p) for p in meta.flip_pairs],
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
    }


def set_onnx_metadata(model, metadata: dict, precision: str) -> None:
    """Write (or replace) the ``hrnext_trt`` entry of an ``onnx.ModelProto`` in place."""
    for i, prop in reversed(list(enumerate(model.metadata_props))):
        if prop.key == METADATA_KEY:
            del model.metadata_props[i]
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({**metadata, "precision": precision}, sort_keys=True)

