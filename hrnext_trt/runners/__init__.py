"""Polygraphy-style runners: one small lifecycle for PyTorch, ONNX Runtime and TensorRT.

A runner is cheap to construct (it only remembers where its model is), allocates on
``activate()`` / ``with``, frees on exit, and maps ``{"images": array} -> {"heatmaps": array}``.
It never times, decodes or flips: the timing harness (``hrnext_trt.benchmark``) and the
pipeline (``hrnext_trt.pipeline``) do that once for every backend.

The backend modules are imported only when a runner of that backend is asked for, so this
package imports without torch, onnxruntime or tensorrt.
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from typing import Callable

import numpy as np

from hrnext_trt.engines.runtime import INPUT_NAME, OUTPUT_NAME
from hrnext_trt.errors import HrnextError

# Each backend is the module hrnext_trt.runners.<backend>, which defines ``RUNNER`` (its Runner
# class) and ``unavailable_reason(device) -> str | None``.
BACKENDS = ("pytorch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# What a comparison table says beside FP16 / INT8 ONNX rows timed on ONNX Runtime's CPU provider,
# and under the table when it has such rows.
CPU_LOW_PRECISION_NOTE = "CPU: accuracy check only; fast path is TensorRT on GPU"
CPU_LOW_PRECISION_FOOTNOTE = ("FP16 and INT8 ONNX files are made for TensorRT's kernels: ONNX Runtime's CPU provider "
                              "runs them slower than FP32, so on the CPU they answer the accuracy question only.")


class BackendUnavailable(HrnextError):
    """The backend cannot run on this machine (package or device missing): a table row, not a crash."""


class Runner(abc.ABC):
    """Base of every runner. Subclasses implement ``_activate``, ``_deactivate`` and ``_infer``."""

    backend: str = ""

    def __init__(self, name: str, precision: str, device: str):
        if precision not in PRECISIONS:
            raise HrnextError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if device not in ("cpu", "cuda"):
            raise HrnextError(f"device {device!r} is not 'cpu' or 'cuda'")
        self._name = name
        self._precision = precision
        self._device = device
        self._active = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def device(self) -> str:
        return self._device

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def cuda_stream(self):
        """The CUDA stream the runner's work is queued on, for device-side timing (None: host clock)."""
        return None

    def activate(self) -> None:
        if self._active:
            raise HrnextError(f"runner {self.name} is already active")
        self._activate()
        self._active = True

    def deactivate(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._active:
            raise HrnextError(f"runner {self.name} is not active: use it inside `with runner:`")
        if INPUT_NAME not in feed:
            raise HrnextError(f"runner {self.name} needs an input named {INPUT_NAME!r}, got {sorted(feed)}")
        return self._infer(feed)

    def heatmap_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        """The ``infer(images) -> heatmaps`` callable that ``hrnext_trt.pipeline.predict`` takes."""
        return lambda images: self.infer({INPUT_NAME: images})[OUTPUT_NAME]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.precision}, {self.device})"

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def _backend_module(backend: str):
    parse_backends(backend)
    return importlib.import_module(f"hrnext_trt.runners.{backend}")


def runner_class(backend: str) -> type[Runner]:
    """The Runner class of ``backend`` (imports that backend's module, not its heavy package)."""
    return _backend_module(backend).RUNNER


def unavailable_reason(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` here (missing package or GPU), or None if it can."""
    return _backend_module(backend).unavailable_reason(device)


def parse_backends(text: str | None) -> list[str]:
    """``"pytorch,onnxruntime"`` -> validated list; None or empty means every backend."""
    if not text:
        return list(BACKENDS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise HrnextError(f"unknown backend {unknown[0]!r} in --backends: choose from {', '.join(BACKENDS)}")
    return names


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver sees a GPU, asked without importing torch or initialising CUDA."""
    # onnxruntime-gpu lists its CUDA provider even on machines without a GPU.
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where an NVIDIA GPU is present, else ``cpu``."""
    if device not in ("auto", "cpu", "cuda"):
        raise HrnextError(f"--device {device!r} is not auto, cpu or cuda")
    return ("cuda" if nvidia_gpu_present() else "cpu") if device == "auto" else device


def low_precision_note(runner: Runner) -> str:
    """The CPU caveat for FP16 / INT8 ONNX on ONNX Runtime's CPU provider, else ""."""
    cpu_low = runner.backend == "onnxruntime" and runner.device == "cpu" and runner.precision in ("fp16", "int8")
    return CPU_LOW_PRECISION_NOTE if cpu_low else ""


def check_input_shape(runner_name: str, expected: tuple, images: np.ndarray) -> None:
    """Raise one line when ``images`` does not fit a model's fixed (C, H, W) (None = dynamic)."""
    if images.ndim != 4 or any(e is not None and e != a for e, a in zip(expected, images.shape[1:])):
        want = "x".join("?" if e is None else str(e) for e in expected)
        raise HrnextError(f"{runner_name} takes images of shape (B, {want}) but got {tuple(images.shape)}: "
                          "use the input size the model was exported with")
