"""The facts every side shares: the exported network's I/O, its geometry, and where it can run.

The ground floor: it imports nothing of the package but ``errors``, so export (the writer),
engines and runners (the readers) and the commands all ask here instead of asking each other.
"""

from __future__ import annotations

import functools
import importlib.util
import numbers
import re
from pathlib import Path

from hrnext_trt.errors import HrnextError

# The I/O tensor names of every export (ONNX files and TensorRT engines).
INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"
# The input's normalisation (ImageNet's mean and std, RGB order; data/preprocess.py applies it),
# recorded with every model (model_spec.py).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# Heatmaps are 1/4 of the input. The lowest of the four branches runs at about 1/32 of it, and the
# fusions resize to the branch sizes, so any multiple of 4 runs (the paper's sizes are of 32).
HEATMAP_STRIDE = 4
INPUT_MULTIPLE = HEATMAP_STRIDE
DEFAULT_INPUT_SIZE = (256, 192)  # the paper's hrnext_s and HRNet-W32 crop, where nothing says otherwise
# trt-eval's crops per network call, which the engines' batch profile (export's --batch) must hold.
TRT_EVAL_BATCH = 32
INPUT_SIZE_HINT = "256x192 for the paper's hrnext_s and hrnet_w32, 384x288 for hrnext_b and hrnet_w48"
# Beside the dataset layouts: one's own unlabelled pictures (a folder of images or a video), which
# export-engine calibrates on and trt-eval compares the backends on (--calib-dataset / --dataset images).
OWN_IMAGES = "images"
# The ONNX metadata_props entry holding the model's description (JSON).
METADATA_KEY = "hrnext_trt"

BACKENDS = ("pytorch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")
# Precisions, one shape everywhere: tuples of these names. A runner runs at one of PRECISIONS;
# PyTorch at one of TORCH_PRECISIONS (autocast); an export writes one ONNX file per EXPORT_PRECISIONS.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")
TRT_INSTALL_HINT = 'pip install "hrnext-trt[trt]"'
TRT_RTX_INSTALL_HINT = 'pip install "hrnext-trt[trt-rtx]"'
NO_BUILDER = f"neither TensorRT ({TRT_INSTALL_HINT}) nor TensorRT for RTX ({TRT_RTX_INSTALL_HINT}) is installed"
# The two engine builders and the modules that provide them, tried in order (hrnext_trt.engines.builders):
# TensorRT, and TensorRT for RTX (its PyPI wheel's module, then its SDK's).
BUILDER_MODULES = {"tensorrt": ("tensorrt",), "tensorrt-rtx": ("tensorrt_rtx_bindings", "tensorrt_rtx")}


def heatmap_size(input_size) -> tuple[int, int]:
    """(h, w) of the heatmaps of an (H, W) input."""
    return int(input_size[0]) // HEATMAP_STRIDE, int(input_size[1]) // HEATMAP_STRIDE


def validate_input_size(size) -> tuple[int, int]:
    """The input size of a model (trained, exported or timed): positive multiples of ``INPUT_MULTIPLE``."""
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0 or height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise HrnextError(f"input size {height}x{width} is not made of positive multiples of {INPUT_MULTIPLE}: "
                          "heatmaps are 1/4 of the input; use e.g. 256x192 or 384x288")
    return height, width


def resolve_input_size(requested, recorded, default=None) -> tuple[int, int] | None:
    """The crop size of a model: the one its checkpoint records, or the one asked for where it records
    none (the paper's mmpose files), else ``default``; asked for and recorded, the two must agree."""
    requested = validate_input_size(requested) if requested is not None else None
    recorded = tuple(recorded) if recorded else None
    if requested is not None and recorded is not None and requested != recorded:
        raise HrnextError(f"input size {requested[0]}x{requested[1]} differs from the {recorded[0]}x{recorded[1]} "
                          "the checkpoint was trained at: leave the input size out (it is for checkpoints that do "
                          "not record theirs)")
    size = requested or recorded or default
    return tuple(size) if size is not None else None


def check_threads(threads: int | None, python: bool = False) -> None:
    """Intra-op threads of PyTorch and ONNX Runtime: None (their default) or a positive count. 0 and
    negative counts would mean the default to ONNX Runtime and an error to PyTorch, mid-run.
    ``python``: the message names the keyword argument, not the command-line flag."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise HrnextError(f"{'threads' if python else '--threads'} must be a positive number of threads, got "
                          f"{threads!r}: leave it out for the libraries' default (every core)")


def check_fraction(name: str, value: float) -> None:
    # NaN compares false with every score: a NaN threshold would keep no box and draw no joint.
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 <= value <= 1):
        raise HrnextError(f"{name} must be a number from 0 to 1, got {value!r}")


def check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise HrnextError(f"{name} must be a whole number of at least 1, got {value!r}")


def check_export_precisions(precisions, field: str) -> tuple[str, ...]:
    """The precisions of an export: FP32 (every other one starts from it), and FP16 / INT8 if asked."""
    precisions = tuple(precisions)
    if "fp32" not in precisions or set(precisions) - set(EXPORT_PRECISIONS):
        raise HrnextError(f"{field} {','.join(precisions)} must include fp32 and may add fp16, int8")
    return precisions


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver sees a GPU, asked without importing torch or initialising CUDA."""
    # onnxruntime-gpu lists its CUDA provider even on machines without a GPU.
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def resolve_device(device: str, python: bool = False) -> str:
    """``auto`` -> ``cuda`` where an NVIDIA GPU is present, else ``cpu``; an explicit ``cuda`` without
    a GPU is refused (nothing asked for could be measured). ``python``: the message names the keyword
    argument, not the command-line flag."""
    if device not in ("auto", *DEVICES):
        raise HrnextError(f"device {device!r} is not auto, cpu or cuda")
    if device == "cuda" and not nvidia_gpu_present():
        spell = (lambda value: f"device={value!r}") if python else (lambda value: f"--device {value}")
        raise HrnextError(f"{spell('cuda')}: this machine has no NVIDIA GPU (no driver device found): use "
                          f"{spell('cpu')}, or auto")
    return ("cuda" if nvidia_gpu_present() else "cpu") if device == "auto" else device


def _pytorch_missing(device: str) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "not installed (pip install torch)"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "torch has no CUDA device here"
    return None


_ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

# What the CUDA provider cannot run without: the libraries it links (cuBLAS(Lt), cuRAND, the CUDA
# runtime) and cuDNN, which every convolution of this network calls. (cuFFT, NVRTC: never used here.)
_ORT_CUDA_NEEDS = re.compile(r"lib(cublasLt|cublas|curand|cudart|cudnn)\.so")


@functools.lru_cache(maxsize=1)
def _onnxruntime_cuda_libraries_missing() -> tuple[str, ...]:
    """Load the CUDA and cuDNN libraries of onnxruntime-gpu's CUDA provider (its own ``preload_dlls``:
    pip's NVIDIA wheels beside it, then the loader's path) and return those that failed to load.

    Without this, only a process that imported a torch of the same CUDA major first finds them:
    onnxruntime silently falls back to the CPU. Once per process (the libraries stay loaded)."""
    import contextlib
    import io

    import onnxruntime as ort

    if not hasattr(ort, "preload_dlls"):  # before 1.21: the libraries must be on the loader's path
        return ()
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # it prints, one line per library that failed
        ort.preload_dlls()
    names = (Path(m).name for m in re.findall(r"^Failed to load (\S+?):", said.getvalue(), re.MULTILINE))
    return tuple(dict.fromkeys(names))


def onnxruntime_cuda_libraries_reason() -> str | None:
    """Why onnxruntime's CUDA provider cannot run here for want of its libraries, or None."""
    missing = [name for name in _onnxruntime_cuda_libraries_missing() if _ORT_CUDA_NEEDS.match(name)]
    if not missing:
        return None
    import onnxruntime as ort
    from onnxruntime.capi import build_and_package_info as build

    return (f"onnxruntime-gpu {ort.__version__} is built for CUDA {getattr(build, 'cuda_version', '') or '?'} and "
            f"cannot load {', '.join(missing)} here: install its CUDA libraries "
            "(pip install \"onnxruntime-gpu[cuda,cudnn]\") or an onnxruntime-gpu built for this machine's CUDA")


def _onnxruntime_missing(device: str) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
    import onnxruntime as ort

    if _ORT_PROVIDERS[device] not in ort.get_available_providers():
        return f"{_ORT_PROVIDERS[device]} is not in this onnxruntime build (pip install onnxruntime-gpu)"
    if device == "cuda" and not nvidia_gpu_present():
        return "no NVIDIA GPU on this machine"
    return onnxruntime_cuda_libraries_reason() if device == "cuda" else None


def builder_module_name(builder: str) -> str | None:
    """The installed module of an engine builder (found without importing it), or None."""
    return next((m for m in BUILDER_MODULES[builder] if importlib.util.find_spec(m) is not None), None)


def installed_builders() -> list[str]:
    """The engine builders (``tensorrt``, ``tensorrt-rtx``) whose Python module is installed."""
    return [b for b in BUILDER_MODULES if builder_module_name(b) is not None]


def _tensorrt_missing(device: str) -> str | None:
    # Engines of either builder only ever run on a GPU, so ``device`` does not matter; the machine does.
    if not installed_builders():
        return NO_BUILDER
    if not nvidia_gpu_present():
        return "no NVIDIA GPU on this machine"
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda not installed (pip install pycuda: no binary wheels, it builds against the CUDA toolkit)"
    return None


_MISSING = {"pytorch": _pytorch_missing, "onnxruntime": _onnxruntime_missing, "tensorrt": _tensorrt_missing}


def unavailable_reason(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` here (missing package or GPU), or None if it can."""
    if backend not in _MISSING:
        raise HrnextError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    return _MISSING[backend](device)
