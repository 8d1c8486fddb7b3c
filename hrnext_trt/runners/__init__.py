"""Polygraphy-style runners: one small lifecycle for PyTorch, ONNX Runtime and TensorRT.

``base`` holds the lifecycle (``Runner``) and ``BackendUnavailable``; each backend is one module
(``pytorch``, ``onnxruntime``, ``tensorrt``) whose heavy package is imported on activation, so
this package imports without torch, onnxruntime or tensorrt. ``timing`` times any runner;
``export_folder`` finds the files of an export folder and gives a runner for each.
"""

from __future__ import annotations

from hrnext_trt.contract import BACKENDS
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners.base import BackendUnavailable, Runner
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner
from hrnext_trt.runners.pytorch import PyTorchRunner
from hrnext_trt.runners.tensorrt import TensorRTRunner

__all__ = ["BackendUnavailable", "OnnxRuntimeRunner", "PyTorchRunner", "Runner", "TensorRTRunner", "runner_class"]

_RUNNERS = {"pytorch": PyTorchRunner, "onnxruntime": OnnxRuntimeRunner, "tensorrt": TensorRTRunner}


def runner_class(backend: str) -> type[Runner]:
    """The Runner class of ``backend``."""
    if backend not in _RUNNERS:
        raise HrnextError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    return _RUNNERS[backend]
