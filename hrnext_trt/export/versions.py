"""The package versions an export records in its manifest (``versions``): what made the files."""

from __future__ import annotations

import importlib
import importlib.util
import platform

from hrnext_trt import __version__
from hrnext_trt.contract import installed_builders
from hrnext_trt.engines.builders import BUILDERS, builder_version

# Module -> the version recorded under this name ("none" where the package is absent).
_VERSIONED_MODULES = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxslim": "onnxslim",
                      "modelopt": "modelopt", "pycuda": "pycuda"}


def package_versions() -> dict:
    versions = {"hrnext_trt": __version__, "python": platform.python_version()}
    for key, module in _VERSIONED_MODULES.items():
        if importlib.util.find_spec(module) is None:
            versions[key] = None
            continue
        versions[key] = getattr(importlib.import_module(module), "__version__", None)
    for builder in BUILDERS:  # tensorrt, tensorrt_rtx: None where absent
        versions[builder.replace("-", "_")] = builder_version(builder) if builder in installed_builders() else None
    import torch

    versions["cuda_torch"] = torch.version.cuda  # None for CPU builds of torch
    return versions
