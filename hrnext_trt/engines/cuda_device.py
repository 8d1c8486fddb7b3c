"""The GPU this process would run on, as pycuda reports it (name, compute capability, CUDA versions).

Both sides ask here: the export writes it into the manifest, the runtime compares against it.
"""

from __future__ import annotations

from hrnext_trt.contract import nvidia_gpu_present
from hrnext_trt.errors import HrnextError

# pycuda publishes source archives only: pip compiles it against a CUDA toolkit.
PYCUDA_HINT = ("pycuda has no binary wheels: pip builds it from source, which needs the CUDA toolkit (nvcc and its "
               "headers; set CUDA_ROOT if it is not in /usr/local/cuda) and a C++ compiler")


def import_pycuda():
    """``pycuda.driver``, initialised; one clear line when pycuda is missing or was built wrong."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        if getattr(exc, "name", None) == "pycuda":
            raise HrnextError(f"pycuda is not installed: engines need it to run on a GPU (pip install pycuda; "
                              f"{PYCUDA_HINT})") from None
        raise HrnextError(f"pycuda cannot be loaded ({' '.join(str(exc).split())}): reinstall it against this "
                          f"machine's CUDA driver ({PYCUDA_HINT})") from None
    cuda.init()
    return cuda


def gpu_info(device: int = 0) -> dict | None:
    """``{"name", "compute_capability", "cuda_driver"}`` of a CUDA device; None without pycuda, without
    an NVIDIA GPU or when the device is not visible (CUDA_VISIBLE_DEVICES). A GPU that is there but
    cannot be reached (driver too old, broken CUDA, a pycuda that does not load) is an error, never
    "no GPU"."""
    if not nvidia_gpu_present():
        return None
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        if getattr(exc, "name", None) == "pycuda":
            return None
        import_pycuda()  # installed but does not load (libcuda.so.1 not found, another numpy): its one line
        raise
    try:
        cuda.init()
        if cuda.Device.count() <= device:
            return None
        dev = cuda.Device(device)
        major, minor = dev.compute_capability()
        driver = cuda.get_driver_version()  # e.g. 12040 -> "12.4"
        name = dev.name()
    except cuda.Error as exc:
        raise HrnextError(f"an NVIDIA GPU is present but CUDA does not start through pycuda ({exc}): check the "
                          "driver (nvidia-smi) and that pycuda was built for this CUDA version") from None
    return {"name": name, "compute_capability": f"{major}.{minor}",
            "cuda_driver": f"{driver // 1000}.{driver % 1000 // 10}"}


_PRIMARY_CONTEXTS: dict = {}


def primary_context(cuda, device: int = 0):
    """The primary context of ``device`` (the one torch and the CUDA runtime use), retained once per
    process and kept: engines push and pop it. pycuda's ``detach`` of a primary context releases it
    without popping it from the driver's context stack (``cuDevicePrimaryCtxRelease`` never pops),
    so detaching after each engine would leave one stale entry on that stack per engine run."""
    if device not in _PRIMARY_CONTEXTS:
        _PRIMARY_CONTEXTS[device] = cuda.Device(device).retain_primary_context()
    return _PRIMARY_CONTEXTS[device]
