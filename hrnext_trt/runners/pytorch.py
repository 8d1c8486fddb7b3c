"""PyTorch runner: the reference every exported artifact is compared with.

FP32 everywhere; the GPU modes a deployment weighs against TensorRT as options (``TorchMode``):
FP16 / bf16 autocast (FP16 on CUDA only), TF32 (CUDA only), channels_last, ``torch.compile``
(default or ``reduce-overhead``, i.e. CUDA graphs) and either DKA form. The DKA layers run in
their fastest eager form (``hrnext_trt.models`` DEFAULT_DKA_MODE) unless the mode names one.
On CUDA, plain FP32 is true FP32: TF32 is off unless the mode asks for it (PyTorch's default
lets cuDNN convolutions round to TF32, which would make the reference row something else).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME, TORCH_PRECISIONS
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners.base import Runner

# The words a mode adds to its precision ("fp16+channels_last+compile-ro"), and what they set.
MODE_FLAGS = {"tf32": ("tf32", True), "channels_last": ("channels_last", True),
              "compile": ("compile", "default"), "compile-ro": ("compile", "reduce-overhead"),
              "grouped": ("dka_mode", "grouped"), "static": ("dka_mode", "static")}


@dataclass(frozen=True)
class TorchMode:
    """How a PyTorch row runs: a precision plus flags, written ``fp16+channels_last+compile``."""

    precision: str = "fp32"
    tf32: bool = False
    channels_last: bool = False
    compile: str | None = None  # None | "default" | "reduce-overhead"
    dka_mode: str | None = None  # None: the models' fastest eager form

    @classmethod
    def parse(cls, text: str) -> "TorchMode":
        precision, *flags = text.strip().split("+")
        if precision not in TORCH_PRECISIONS:
            raise HrnextError(f"PyTorch mode {text!r} must start with a precision of {', '.join(TORCH_PRECISIONS)}")
        values: dict = {}
        for flag in flags:
            if flag not in MODE_FLAGS:
                raise HrnextError(f"PyTorch mode {text!r}: unknown flag {flag!r}; flags are {', '.join(MODE_FLAGS)}")
            field, value = MODE_FLAGS[flag]
            if field in values:
                raise HrnextError(f"PyTorch mode {text!r} sets {field} twice")
            values[field] = value
        return cls(precision, **values)

    @property
    def label(self) -> str:
        flags = [f for f, (field, value) in MODE_FLAGS.items() if getattr(self, field) == value]
        return "+".join([self.precision, *flags])

    @property
    def description(self) -> str:
        """The flags in words, for a table's notes column ("" for plain eager)."""
        words = [{"tf32": "TF32", "channels_last": "channels_last"}[f] for f in ("tf32", "channels_last")
                 if getattr(self, f)]
        if self.compile:
            words.append("torch.compile" + ("" if self.compile == "default" else f"({self.compile})"))
        if self.dka_mode:
            words.append(f"{self.dka_mode} DKA")
        return " ".join(words)


def tf32_flags() -> tuple:
    """Whether CUDA matmuls and cuDNN convolutions may round float32 to TF32, as set now.

    PyTorch 2.9 added per-backend ``fp32_precision`` ("ieee", "tf32", "none": inherit) and raises
    when the legacy ``allow_tf32`` flags are read after anything in the process used the new API
    (a mix it refuses to interpret); so the new API wherever it exists, the legacy one before."""
    import torch

    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return ("new", torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    return ("legacy", torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def set_tf32(enabled: bool) -> None:
    import torch

    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = (
            "tf32" if enabled else "ieee")
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled


def restore_tf32(flags: tuple) -> None:
    """Put back what ``tf32_flags`` returned."""
    import torch

    api, matmul, conv = flags
    if api == "new":
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = matmul, conv
    else:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv


# PyTorch's intra-op thread count is one setting per process. Runners that ask for a count hold
# claims on it, in activation order: the latest open claim's count applies, and the process's own
# count comes back when the last one closes, whichever order they close in.
_thread_claims: list[tuple[object, int]] = []
_threads_before_claims = 0


def _claim_threads(owner, threads: int) -> None:
    import torch

    global _threads_before_claims
    if not _thread_claims:
        _threads_before_claims = torch.get_num_threads()
    _thread_claims.append((owner, threads))
    torch.set_num_threads(threads)


def _release_threads(owner) -> None:
    import torch

    held = [claim for claim in _thread_claims if claim[0] is owner]
    if not held:
        return
    _thread_claims.remove(held[0])
    torch.set_num_threads(_thread_claims[-1][1] if _thread_claims else _threads_before_claims)


class PyTorchRunner(Runner):
    """Runs a ``PoseModel`` given as a module or a checkpoint path (loaded on activation)."""

    backend = "pytorch"

    def __init__(self, model, precision: str = "fp32", device: str = "cpu", compile: bool | str | None = None,
                 dka_mode: str | None = None, threads: int | None = None, name: str | None = None,
                 tf32: bool = False, channels_last: bool = False):
        mode = TorchMode(precision, tf32, channels_last, "default" if compile is True else (compile or None),
                         dka_mode)
        super().__init__(name or f"pytorch-{mode.label}", precision, device)
        if precision == "int8":
            raise HrnextError("the pytorch runner has no int8 mode: INT8 is the exported model_int8.onnx")
        if precision == "fp16" and device == "cpu":
            raise HrnextError("pytorch fp16 autocast needs --device cuda (use bf16 or fp32 on the CPU)")
        if tf32 and device == "cpu":
            raise HrnextError("TF32 is a CUDA mode: drop +tf32 on the CPU")
        self.model_source = model
        self.mode = mode
        self.compile = mode.compile
        self.dka_mode = dka_mode
        self.threads = threads
        self._model = None
        self._forward = None

    @classmethod
    def from_mode(cls, model, mode: TorchMode, device: str, threads: int | None = None) -> "PyTorchRunner":
        return cls(model, mode.precision, device, compile=mode.compile, dka_mode=mode.dka_mode, threads=threads,
                   tf32=mode.tf32, channels_last=mode.channels_last)

    def _activate(self) -> None:
        self._require_backend(f"pytorch on {self.device}")
        import torch

        from hrnext_trt.models import DEFAULT_DKA_MODE, load_pose_model  # torch side

        if isinstance(self.model_source, (str, Path)):
            model = load_pose_model(self.model_source)
        else:
            model = self.model_source
        # Process-wide settings this runner changes, put back by _deactivate (or here, on a failure).
        # Threads only where asked for: a runner without a count leaves the process's setting alone.
        self._restore = (tf32_flags(), torch.backends.cudnn.benchmark) if self.device == "cuda" else None
        try:
            if self.threads:
                _claim_threads(self, self.threads)
            if self.device == "cuda":
                set_tf32(self.mode.tf32)
                # cuDNN times the algorithms of each convolution shape and keeps the fastest (the
                # warm-up calls pay for it), as ONNX Runtime's CUDA provider and TensorRT tune theirs.
                torch.backends.cudnn.benchmark = True
            model = model.eval().to(self.device)
            self._memory_format = torch.channels_last if self.mode.channels_last else torch.contiguous_format
            if self.mode.channels_last:
                # Module.to(memory_format=...) refuses the 5-D DKA kernel banks: convert the 4-D tensors only.
                for tensor in [*model.parameters(), *model.buffers()]:
                    if tensor.dim() == 4:
                        tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
            # Set explicitly: a module handed over after export may still be in the "static" form.
            model.set_dka_mode(self.dka_mode or DEFAULT_DKA_MODE)
            self._model = model
            self._forward = torch.compile(model, mode=self.compile) if self.compile else model
            self._autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
            # Host memory a CUDA call copies through: page-locked, so both copies are DMA transfers,
            # as TensorRT's runner does (pageable memory is staged by the driver at about half the speed).
            self._staging = HostStaging(pinned=self.device == "cuda")
        except BaseException:
            self._deactivate()
            raise

    def _deactivate(self) -> None:
        import torch

        self._model = self._forward = self._staging = None
        if self.compile:
            # Frees the compiled graphs and their CUDA-graph memory pools, which empty_cache cannot, and
            # the recompile count that Dynamo keeps per code object, shared by every model in the process.
            torch._dynamo.reset()
        _release_threads(self)
        cuda = self._restore
        if cuda is not None:
            restore_tf32(cuda[0])
            torch.backends.cudnn.benchmark = cuda[1]
            torch.cuda.empty_cache()

    @property
    def module(self):
        """The active ``PoseModel`` (None before activation)."""
        return self._model

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        images = feed[INPUT_NAME]
        if images.shape[1] != 3:  # the pose models take colour crops
            raise self.crops_error(images)
        if self.device == "cuda":
            host = self._staging.view("input", images.shape)
            host.numpy()[...] = images  # casts to float32
            images = host.to(self.device, non_blocking=True)
        else:
            images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        images = images.contiguous(memory_format=self._memory_format)
        with torch.inference_mode(), torch.autocast(self.device, dtype=self._autocast or torch.float32,
                                                    enabled=self._autocast is not None):
            heatmaps = self._forward(images)
        if self.device != "cuda":
            return {OUTPUT_NAME: heatmaps.float().numpy()}
        host = self._staging.view("output", heatmaps.shape)
        host.copy_(heatmaps.float(), non_blocking=True)
        torch.cuda.current_stream().synchronize()
        # A copy: the staging buffers are reused by the next call (whose input copy also waits for this).
        return {OUTPUT_NAME: host.numpy().copy()}


class HostStaging:
    """Reused float32 host buffers, one per name, grown to the largest shape asked (page-locked when
    ``pinned``); ``view`` returns a tensor of ``shape`` on the start of the buffer."""

    def __init__(self, pinned: bool):
        self.pinned = pinned
        self._buffers: dict = {}

    def view(self, name: str, shape):
        import torch

        shape = tuple(int(s) for s in shape)
        count = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < count:
            buffer = self._buffers[name] = torch.empty(count, dtype=torch.float32, pin_memory=self.pinned)
        return buffer[:count].view(shape)

