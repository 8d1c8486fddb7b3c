"""The runner lifecycle every backend shares (Polygraphy style), and the error of a missing backend.

A runner is cheap to construct (it only remembers where its model is), allocates on
``activate()`` / ``with``, frees on exit, and maps ``{"images": array} -> {"heatmaps": array}``.
It never times, decodes or flips: the timing harness (``hrnext_trt.runners.timing``) and the
pipeline (``hrnext_trt.pipeline``) do that once for every backend.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Callable

import numpy as np

from hrnext_trt.contract import DEVICES, INPUT_NAME, OUTPUT_NAME, PRECISIONS, unavailable_reason
from hrnext_trt.errors import HrnextError


class BackendUnavailable(HrnextError):
    """The backend cannot run on this machine (package or device missing): a table row, not a crash.
    ``reason`` is what the row says."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or str(self)


class Runner(abc.ABC):
    """Base of every runner. Subclasses implement ``_activate``, ``_deactivate`` and ``_infer``."""

    backend: str = ""
    path: Path | None = None  # the file the runner runs (None: a model in memory)

    def __init__(self, name: str, precision: str, device: str):
        if precision not in PRECISIONS:
            raise HrnextError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if device not in DEVICES:
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
        images = feed[INPUT_NAME]
        # Every backend alike (PyTorch raised its own errors, ONNX Runtime one line).
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise self.crops_error(images)
        return self._infer(feed)

    def crops_error(self, images) -> HrnextError:
        """The line for input that is not a batch of normalised crops, channels first."""
        got = f"an array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        return HrnextError(f"runner {self.name} takes normalised crops as an array of shape (B, 3, H, W), got {got}: "
                           "channels first (transpose (B, H, W, 3) with .transpose(0, 3, 1, 2))")

    def check_batch(self, batch: int) -> None:
        """One line when the model cannot take batches of ``batch`` crops (engines: outside their profile)."""

    def _require_backend(self, where: str) -> None:
        """Raise ``BackendUnavailable`` when this machine cannot run the backend (package or GPU missing)."""
        reason = unavailable_reason(self.backend, self.device)
        if reason:
            raise BackendUnavailable(f"{where}: {reason}", reason)

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
