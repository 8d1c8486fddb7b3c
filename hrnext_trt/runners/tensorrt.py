"""TensorRT runner: a thin wrapper over ``hrnext_trt.engines.TensorRTEngine`` (no torch here).

It runs engines of either builder, TensorRT or TensorRT for RTX; the engine's manifest says which.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrnext_trt.contract import INPUT_NAME
from hrnext_trt.engines import EngineNotRunnableHere, TensorRTEngine, check_engine_input_shape
from hrnext_trt.errors import HrnextError
from hrnext_trt.manifest import Manifest
from hrnext_trt.pipeline import run_batched
from hrnext_trt.runners.base import BackendUnavailable, Runner


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, path: str | Path, precision: str, manifest: Manifest | None = None, name: str | None = None):
        super().__init__(name or f"tensorrt-{precision}", precision, "cuda")
        self.path = Path(path)
        self.manifest = manifest
        self._engine = None

    def _activate(self) -> None:
        if not self.path.is_file():
            raise HrnextError(f"TensorRT engine {self.path} does not exist: build it with `hrnext-trt export-engine`")
        self._require_backend("tensorrt")
        engine = TensorRTEngine(self.path, manifest=self.manifest)
        try:
            engine.activate()
        except EngineNotRunnableHere as exc:  # e.g. built for other GPUs: a row that says so, not a stop
            raise BackendUnavailable(str(exc)) from None
        self._engine = engine

    def check_batch(self, batch: int) -> None:
        if self.manifest is not None:  # an engine only takes the batch sizes of its optimisation profile
            low = self.manifest.batch_profile["min"]  # fewer crops are padded up to it (``_infer``)
            check_engine_input_shape(self.manifest, (max(batch, low), 3, *self.manifest.model.input_size))

    def _deactivate(self) -> None:
        self._engine.deactivate()
        self._engine = None

    @property
    def cuda_stream(self):
        return self._engine.stream if self._engine is not None else None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = feed[INPUT_NAME]
        low = self._engine.batch_profile["min"]
        if 0 < len(images) < low:
            # A dataset's last batch, a frame with few people: below the profile's MIN (an export with
            # --batch 8,16,16) the engine refuses it; padded with repeated crops, their outputs dropped.
            return run_batched(lambda x: self._engine.infer({INPUT_NAME: x}), images, len(images), low)
        return self._engine.infer(feed)

