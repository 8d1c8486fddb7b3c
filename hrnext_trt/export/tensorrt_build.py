"""TensorRT engines from the exported ONNX files: strongly typed, one batch profile, a shared timing cache.

The ONNX file decides every layer's precision (FP32, AutoCast FP16, Q/DQ INT8); the network is
strongly typed, so TensorRT follows it instead of choosing types itself. This is the only form
TensorRT 11 builds, and TensorRT 10 builds it the same way with the STRONGLY_TYPED flag.
The builder's log is kept beside the engine (``build_<precision>.log``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hrnext_trt.contract import INPUT_NAME
from hrnext_trt.engines.runtime import import_tensorrt
from hrnext_trt.errors import HrnextError

log = logging.getLogger(__name__)


def _recording_logger(trt):
    class RecordingLogger(trt.ILogger):
        """Keeps the builder's messages from INFO up for the build log (VERBOSE would be megabytes)."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines: list[str] = []
            self.errors: list[str] = []

        def log(self, severity, msg):  # called from TensorRT, which expects it never to raise
            if severity == trt.ILogger.Severity.VERBOSE:
                return
            self.lines.append(f"[{getattr(severity, 'name', severity)}] {msg}")
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)

    return RecordingLogger()


def _network_flags(trt) -> int:
    # TensorRT 11 is always strongly typed and deprecates the flag; TensorRT 10 needs it.
    if int(trt.__version__.split(".")[0]) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_engine(onnx_path: Path, engine_path: Path, log_path: Path, input_size: tuple[int, int],
                 batch: tuple[int, int, int], workspace_gb: float, timing_cache: Path, tf32: bool) -> dict:
    """Build ``engine_path`` from ``onnx_path``; returns {"seconds", "timing_cache_reused", "tf32"} for the
    manifest. ``tf32``: let float32 convolutions round their inputs to TF32 (TensorRT's default)."""
    trt = import_tensorrt()
    start = time.perf_counter()
    logger = _recording_logger(trt)
    try:
        cached = _build(trt, logger, onnx_path, engine_path, log_path, input_size, batch, workspace_gb, timing_cache,
                        tf32)
    finally:
        log_path.write_text("\n".join(logger.lines) + "\n", encoding="utf-8")
    return {"seconds": round(time.perf_counter() - start, 2), "timing_cache_reused": bool(cached), "tf32": tf32}


def _build(trt, logger, onnx_path: Path, engine_path: Path, log_path: Path, input_size: tuple[int, int],
           batch: tuple[int, int, int], workspace_gb: float, timing_cache: Path, tf32: bool) -> bytes:
    """The build itself; returns the timing cache it started from (empty when new)."""
    height, width = input_size
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        first = parser.get_error(0).desc() if parser.num_errors else "unknown error"
        raise HrnextError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {first} (log: {log_path})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    cached = timing_cache.read_bytes() if timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
        # A cache from another GPU or TensorRT version cannot be used: say so and start a new one.
        log.warning("timing cache %s was made on another GPU or TensorRT version: starting a new one", timing_cache)
        cached = b""
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *[(b, 3, height, width) for b in batch])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = logger.errors[-1] if logger.errors else "no error was logged"
        raise HrnextError(f"TensorRT failed to build {engine_path.name}: {reason} (log: {log_path})")
    engine_path.write_bytes(serialized)
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(config.get_timing_cache().serialize())
    return cached
