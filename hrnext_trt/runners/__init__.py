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

__all__ = ["BackendUnavailable", "OnnxRuntimeRunner", "PyTorchRunner", "Runner", "TensorRTRunner", "low_precision_note",
           "parse_backends", "runner_class"]

_RUNNERS = {"pytorch": PyTorchRunner, "onnxruntime": OnnxRuntimeRunner, "tensorrt": TensorRTRunner}
# What a comparison table says beside FP16 / INT8 ONNX rows timed on ONNX Runtime's CPU provider,
# and under the table when it has such rows.
CPU_LOW_PRECISION_NOTE = "CPU: accuracy check only; fast path is TensorRT on GPU"
CPU_LOW_PRECISION_FOOTNOTE = ("FP16 and INT8 ONNX files are made for TensorRT's kernels: ONNX Runtime's CPU provider "
                              "runs them slower than FP32, so on the CPU they answer the accuracy question only.")


def runner_class(backend: str) -> type[Runner]:
    """The Runner class of ``backend``."""
    parse_backends(backend)
    return _RUNNERS[backend]


def parse_backends(text: str | None) -> list[str]:
    """``"pytorch,onnxruntime"`` -> validated list; None or empty means every backend."""
    if not text:
        return list(BACKENDS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise HrnextError(f"unknown backend {unknown[0]!r} in --backends: choose from {', '.join(BACKENDS)}")
    return names


def low_precision_note(runner: Runner) -> str:
    """The CPU caveat for FP16 / INT8 ONNX on ONNX Runtime's CPU provider, else ""."""
    cpu_low = runner.backend == "onnxruntime" and runner.device == "cpu" and runner.precision in ("fp16", "int8")
    return CPU_LOW_PRECISION_NOTE if cpu_low else ""
