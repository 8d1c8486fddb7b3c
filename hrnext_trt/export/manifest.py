"""``manifest.json``: what an export folder holds and what it was made from, as checkable facts.

Read back by ``hrnext_trt.engines.manifest_check`` (the deployment side), which owns the format
constants. Every file is listed with its sha256 and size; engines add the TensorRT version and
GPU they were built for.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import platform
from pathlib import Path

from hrnext_trt import __version__
from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME, heatmap_size
from hrnext_trt.engines.manifest_check import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, sha256_file

# Module -> the version recorded under this name ("none" where the package is absent).
_VERSIONED_MODULES = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxslim": "onnxslim",
                      "modelopt": "modelopt", "tensorrt": "tensorrt", "pycuda": "pycuda"}


def package_versions() -> dict:
    versions = {"hrnext_trt": __version__, "python": platform.python_version()}
    for key, module in _VERSIONED_MODULES.items():
        if importlib.util.find_spec(module) is None:
            versions[key] = None
            continue
        versions[key] = getattr(importlib.import_module(module), "__version__", None)
    import torch

    versions["cuda_torch"] = torch.version.cuda  # None for CPU builds of torch
    return versions


def file_entry(path: Path, kind: str, precision: str | None, **extra) -> dict:
    return {"kind": kind, "precision": precision, "size": path.stat().st_size, "sha256": sha256_file(path), **extra}


def new_manifest(model_metadata: dict, checkpoint: Path, batch: tuple[int, int, int], gpu: dict | None) -> dict:
    height, width = model_metadata["input_size"]
    joints = model_metadata["num_joints"]
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model_metadata,
        "source_checkpoint": {"path": str(checkpoint.resolve()), "sha256": sha256_file(checkpoint),
                              "size": checkpoint.stat().st_size},
        "versions": package_versions(),
        "gpu": gpu,
        "batch_profile": {"min": batch[0], "opt": batch[1], "max": batch[2]},
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, height, width], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", joints, *heatmap_size((height, width))], "dtype": "float32"},
        "artifacts": {},
        "timings_s": {},
    }


def write_manifest(manifest: dict, out_dir: Path) -> Path:
    path = out_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path
