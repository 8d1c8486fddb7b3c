"""PyTorch runner: the reference every exported artifact is compared with.

FP32 everywhere; FP16 / bf16 autocast and ``torch.compile`` as options (FP16 on CUDA only).
The DKA layers run in their fastest eager form (``hrnext_trt.models`` DEFAULT_DKA_MODE) unless
``dka_mode`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners.base import Runner


class PyTorchRunner(Runner):
    """Runs a ``PoseModel`` given as a module or a checkpoint path (loaded on activation)."""

    backend = "pytorch"

    def __init__(self, model, precision: str = "fp32", device: str = "cpu", compile: bool = False,
                 dka_mode: str | None = None, threads: int | None = None, name: str | None = None):
        super().__init__(name or f"pytorch-{precision}{'-compiled' if compile else ''}", precision, device)
        if precision == "int8":
            raise HrnextError("the pytorch runner has no int8 mode: INT8 is the exported model_int8.onnx")
        if precision == "fp16" and device == "cpu":
            raise HrnextError("pytorch fp16 autocast needs --device cuda (use bf16 or fp32 on the CPU)")
        self.model_source = model
        self.compile = compile
        self.dka_mode = dka_mode  # None: the models' fastest eager form
        self.threads = threads
        self._model = None
        self._forward = None

    def _activate(self) -> None:
        self._require_backend(f"pytorch on {self.device}")
        import torch

        from hrnext_trt.models import DEFAULT_DKA_MODE, load_pose_model  # torch side

        if isinstance(self.model_source, (str, Path)):
            model = load_pose_model(self.model_source)
        else:
            model = self.model_source
        self._restore_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        model = model.eval().to(self.device)
        # Set explicitly: a module handed over after export may still be in the "static" form.
        model.set_dka_mode(self.dka_mode or DEFAULT_DKA_MODE)
        self._model = model
        self._forward = torch.compile(model) if self.compile else model
        self._autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)

    def _deactivate(self) -> None:
        import torch

        self._model = self._forward = None
        torch.set_num_threads(self._restore_threads)
        if self.device == "cuda":
            torch.cuda.empty_cache()

    @property
    def module(self):
        """The active ``PoseModel`` (None before activation)."""
        return self._model

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        images = torch.from_numpy(np.ascontiguousarray(feed[INPUT_NAME], dtype=np.float32)).to(self.device)
        with torch.inference_mode(), torch.autocast(self.device, dtype=self._autocast or torch.float32,
                                                    enabled=self._autocast is not None):
            heatmaps = self._forward(images)
        return {OUTPUT_NAME: heatmaps.float().cpu().numpy()}

