"""Run an engine made by ``hrnext-trt export-engine``: the deployment runtime.

Imports TensorRT or TensorRT for RTX (whichever built the engine, as the manifest says), pycuda
and numpy only (never torch, never training code). Lifecycle as the runners: a cheap
constructor, ``activate()`` (or ``with``) checks the manifest, deserialises the engine and
allocates device buffers for the largest batch of the profile, ``infer`` runs
``execute_async_v3`` on a pycuda stream, ``deactivate()`` frees everything.

TensorRT for RTX compiles its kernels for this GPU when the execution context is created; a
``runtime_cache`` file keeps them for the next process (it is checked against the GPU, driver
and TensorRT for RTX version, and rebuilt when it does not match).

Inputs are numpy arrays (copied through page-locked memory) or CUDA tensors of any library
that exposes ``data_ptr()``, ``is_cuda`` and ``new_empty`` (torch): those are read in place and
the heatmaps come back as a tensor of the same library on the same GPU, with no host copy.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
from pathlib import Path

import numpy as np

from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME
from hrnext_trt.engines.builders import TENSORRT_RTX, TITLES, import_builder
from hrnext_trt.engines.cuda_device import gpu_info, import_pycuda, primary_context
from hrnext_trt.engines.manifest_check import (EngineNotRunnableHere, check_engine_builder, check_engine_gpu,
                                               check_engine_input_shape, engine_builder, verify_model_file)
from hrnext_trt.errors import HrnextError
from hrnext_trt.manifest import MANIFEST_NAME, Manifest, load_manifest

log = logging.getLogger(__name__)


def _is_cuda_tensor(array) -> bool:
    return hasattr(array, "data_ptr") and bool(getattr(array, "is_cuda", False))


class TensorRTEngine:
    """One engine file; ``manifest`` is a Manifest or path (default: ``manifest.json`` beside the engine)."""

    def __init__(self, path: str | Path, manifest: Manifest | str | Path | None = None, device: int = 0,
                 runtime_cache: str | Path | None = None):
        self.path = Path(path)
        self._manifest_source = manifest if manifest is not None else self.path.parent / MANIFEST_NAME
        self.device = device
        self.runtime_cache = Path(runtime_cache) if runtime_cache is not None else None  # TensorRT for RTX only
        self.manifest: Manifest | None = None
        self._active = False

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "TensorRTEngine":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if self._active:
            return
        if not self.path.is_file():
            raise HrnextError(f"engine {self.path} not found: build it with `hrnext-trt export-engine`")
        manifest = self._manifest_source
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        builder, _ = engine_builder(self.manifest.entry(self.path.name))
        verify_model_file(self.path, self.manifest)
        # Every check that can fail cleanly runs before deserialisation, which may abort the process.
        trt, cuda = self._check_runs_here(builder)
        self._builder, self._trt = builder, trt

        self._cuda = cuda
        # The primary context is the one torch and the CUDA runtime use: tensors from there are valid here.
        self._ctx = primary_context(cuda, self.device)
        self._ctx.push()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            blob = self.path.read_bytes()
            if builder == TENSORRT_RTX:
                self._check_rtx_header(trt, blob)
            self._engine = self._runtime.deserialize_cuda_engine(blob)
            if self._engine is None:
                raise EngineNotRunnableHere(f"{TITLES[builder]} could not deserialise {self.path} on this GPU (see "
                                            "its log above): rebuild it with this version, on this GPU")
            self._context = self._create_context()
            self._stream = cuda.Stream()
            self._allocate(trt)
        except BaseException:
            self._release()
            raise
        self._active = True
        # An engine never deactivated (``PoseEstimator(M)(image)`` in a script) would leave its context
        # on the stack at exit, where pycuda aborts the process; atexit runs this before pycuda's cleanup
        # (registered after pycuda's import, so earlier in atexit's last-in-first-out order).
        atexit.register(self.deactivate)

    def _check_runs_here(self, builder: str):
        """(builder module, pycuda driver) when this machine can run the engine; else EngineNotRunnableHere
        with the first missing piece: the builder and its version, pycuda, a GPU, its compute capability."""
        try:
            trt = import_builder(builder)  # one line when the builder of this engine is not installed
            check_engine_builder(self.manifest, self.path.name, builder, trt.__version__)
            gpu = gpu_info(self.device)
            if gpu is None:
                if importlib.util.find_spec("pycuda") is None:
                    import_pycuda()  # raises the one line on how to get pycuda
                raise HrnextError(f"no CUDA GPU {self.device} is visible: engines run on an NVIDIA GPU with its driver")
            check_engine_gpu(self.manifest, self.path.name, gpu["name"], gpu["compute_capability"])
            return trt, import_pycuda()
        except EngineNotRunnableHere:
            raise
        except HrnextError as exc:
            raise EngineNotRunnableHere(str(exc)) from None

    def _check_rtx_header(self, trt, blob: bytes) -> None:
        """TensorRT for RTX reads an engine's header against this GPU before deserialising it."""
        validity, _ = self._runtime.get_engine_validity(blob)
        if validity == trt.EngineValidity.INVALID:
            raise EngineNotRunnableHere(f"TensorRT for RTX reports {self.path.name} invalid on this GPU (engine header "
                                        "check): rebuild it with `hrnext-trt export-engine --builder tensorrt-rtx` for "
                                        "this GPU")

    def _create_context(self):
        """The execution context; TensorRT for RTX compiles its kernels here, reusing the runtime cache."""
        if self._builder != TENSORRT_RTX:
            return self._engine.create_execution_context()
        # Both must outlive the context that uses them: kept on self, released after it.
        self._runtime_config = config = self._engine.create_runtime_config()
        # A new batch size compiles its shape-specialised kernels before it runs (LAZY, the default,
        # runs generic fallback kernels meanwhile): the same kernels for every call of one shape, so
        # accuracy rows and latency after warm-up do not depend on a background compiler's timing.
        config.dynamic_shapes_kernel_specialization_strategy = self._trt.DynamicShapesKernelSpecializationStrategy.EAGER
        self._runtime_cache = config.create_runtime_cache()
        if self.runtime_cache is not None and self.runtime_cache.is_file():
            if not self._runtime_cache.deserialize(self.runtime_cache.read_bytes()):
                log.info("runtime cache %s does not match this GPU, driver or version: compiling anew",
                         self.runtime_cache)
        config.set_runtime_cache(self._runtime_cache)
        return self._engine.create_execution_context(config)

    def _save_runtime_cache(self) -> None:
        if self.runtime_cache is not None and getattr(self, "_runtime_cache", None) is not None:
            self.runtime_cache.parent.mkdir(parents=True, exist_ok=True)
            self.runtime_cache.write_bytes(bytes(self._runtime_cache.serialize()))

    def describe(self) -> dict:
        """What the deserialised engine itself declares: I/O names, dtypes, profile shapes, layer count."""
        if not self._active:
            raise HrnextError("TensorRTEngine.describe called before activate(): use `with TensorRTEngine(path)`")
        engine, trt = self._engine, self._trt
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            entry = {"name": name, "mode": engine.get_tensor_mode(name).name.lower(),
                     "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name,
                     "shape": list(engine.get_tensor_shape(name))}
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                entry["profile"] = dict(zip(("min", "opt", "max"),
                                            (list(s) for s in engine.get_tensor_profile_shape(name, 0))))
            tensors.append(entry)
        return {"builder": self._builder, "builder_version": trt.__version__, "layers": engine.num_layers,
                "io": tensors}

    def _allocate(self, trt) -> None:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        if sorted(names) != sorted([INPUT_NAME, OUTPUT_NAME]):
            raise HrnextError(f"{self.path} has I/O tensors {names}, expected {INPUT_NAME!r} and {OUTPUT_NAME!r}: "
                              "build engines from hrnext-trt's ONNX export")
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        _, _, max_shape = self._engine.get_tensor_profile_shape(INPUT_NAME, 0)
        max_shape = tuple(max_shape)
        self._context.set_input_shape(INPUT_NAME, max_shape)
        out_max = tuple(self._context.get_tensor_shape(OUTPUT_NAME))
        cuda = self._cuda
        self._host = {
            INPUT_NAME: cuda.pagelocked_empty(max_shape, self._dtypes[INPUT_NAME]),
            OUTPUT_NAME: cuda.pagelocked_empty(out_max, self._dtypes[OUTPUT_NAME]),
        }
        self._device_buf = {name: cuda.mem_alloc(buf.nbytes) for name, buf in self._host.items()}

    def deactivate(self) -> None:
        if not self._active:
            return
        atexit.unregister(self.deactivate)
        try:
            self._stream.synchronize()
            self._save_runtime_cache()
        finally:
            self._release()
            self._active = False

    def _release(self) -> None:
        for buf in getattr(self, "_device_buf", {}).values():
            buf.free()
        # TensorRT objects must go while the CUDA context they live in is current.
        for name in ("_context", "_runtime_cache", "_runtime_config", "_engine", "_runtime", "_host", "_device_buf",
                     "_stream"):
            if hasattr(self, name):
                delattr(self, name)
        self._ctx.pop()  # kept retained (primary_context): a detach would leave it on the driver's stack

    # -- inference -------------------------------------------------------------------------------

    @property
    def batch_profile(self) -> dict:
        return self.manifest.batch_profile

    @property
    def stream(self):
        """The pycuda stream inference is queued on (for CUDA-event timing); None when inactive."""
        return self._stream if self._active else None

    def infer(self, feed: dict) -> dict:
        """``{"images": (B,3,H,W)}`` -> ``{"heatmaps": (B,J,H/4,W/4)}``, numpy in -> numpy out."""
        if not self._active:
            raise HrnextError("TensorRTEngine.infer called before activate(): use `with TensorRTEngine(path) as engine`")
        if set(feed) != {INPUT_NAME}:
            raise HrnextError(f"the engine takes one input {INPUT_NAME!r}, got {sorted(feed)}")
        images = feed[INPUT_NAME]
        shape = tuple(images.shape)
        check_engine_input_shape(self.manifest, shape)
        self._context.set_input_shape(INPUT_NAME, shape)
        out_shape = tuple(self._context.get_tensor_shape(OUTPUT_NAME))
        if _is_cuda_tensor(images):
            return {OUTPUT_NAME: self._infer_device(images, out_shape)}
        return {OUTPUT_NAME: self._infer_host(np.asarray(images), shape, out_shape)}

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._stream.handle):
            raise HrnextError(f"TensorRT failed to run {self.path.name} (see the TensorRT log above)")

    def _infer_host(self, images: np.ndarray, shape: tuple, out_shape: tuple) -> np.ndarray:
        cuda = self._cuda
        count = int(np.prod(shape))
        host_in = self._host[INPUT_NAME].reshape(-1)[:count].reshape(shape)
        host_in[...] = images  # casts to the engine's input dtype
        host_out = self._host[OUTPUT_NAME].reshape(-1)[: int(np.prod(out_shape))].reshape(out_shape)
        self._context.set_tensor_address(INPUT_NAME, int(self._device_buf[INPUT_NAME]))
        self._context.set_tensor_address(OUTPUT_NAME, int(self._device_buf[OUTPUT_NAME]))
        cuda.memcpy_htod_async(self._device_buf[INPUT_NAME], host_in, self._stream)
        self._execute()
        cuda.memcpy_dtoh_async(host_out, self._device_buf[OUTPUT_NAME], self._stream)
        self._stream.synchronize()
        return host_out.copy()  # the page-locked buffer is reused by the next call

    def _infer_device(self, images, out_shape: tuple):
        want = self._dtypes[INPUT_NAME]
        if self._dtypes[OUTPUT_NAME] != want:
            raise HrnextError(f"{self.path.name} has {want.name} input but {self._dtypes[OUTPUT_NAME].name} output: "
                              "pass numpy arrays, or export with float32 I/O (the default)")
        if str(images.dtype).rsplit(".", 1)[-1] != want.name or not images.is_contiguous():
            raise HrnextError(f"CUDA input must be a contiguous {want.name} tensor, got {images.dtype} "
                              f"(contiguous={images.is_contiguous()}): convert it with .to(dtype).contiguous()")
        heatmaps = images.new_empty(out_shape)  # same library, device and dtype as the input (float32 I/O)
        # The producer of `images` may still be running on another stream of this context.
        self._cuda.Context.synchronize()
        self._context.set_tensor_address(INPUT_NAME, int(images.data_ptr()))
        self._context.set_tensor_address(OUTPUT_NAME, int(heatmaps.data_ptr()))
        self._execute()
        self._stream.synchronize()
        return heatmaps
