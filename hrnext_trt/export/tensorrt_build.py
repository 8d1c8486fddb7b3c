"""Engines from the exported ONNX files with TensorRT or TensorRT for RTX: strongly typed, one batch profile.

The ONNX file decides every layer's precision (FP32, AutoCast FP16, Q/DQ INT8); the network is
strongly typed, so the builder follows it instead of choosing types itself. TensorRT 11 and
TensorRT for RTX build only that way; TensorRT 10 does with the STRONGLY_TYPED flag. Which one
applies is asked of the network, not read from a version number.

What the build reports needs no GPU: the ONNX nodes the parser accepted, and the parsed network
the engine is compiled from (layers by type and precision, I/O names, dtypes and shapes) with the
profile the builder checked against it. The engine itself can only be deserialised, and so
inspected, where a GPU is present (``hrnext_trt.engines.TensorRTEngine.describe``). The builder's
log is kept beside the engine (``build_<precision>.log``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from hrnext_trt.contract import INPUT_NAME
from hrnext_trt.engines.builders import TENSORRT_RTX, TITLES, compute_capability_enum, import_builder
from hrnext_trt.errors import HrnextError

log = logging.getLogger(__name__)

_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
           "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "fp8", "INT4": "int4", "FP4": "fp4"}


def dtype_name(dtype) -> str:
    return _DTYPES.get(dtype.name, dtype.name.lower())


def _recording_logger(trt):
    class RecordingLogger(trt.ILogger):
        """Keeps the builder's messages from INFO up for the build log (VERBOSE would be megabytes)."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines: list[str] = []
            self.errors: list[str] = []

        def log(self, severity, msg):  # called from the builder, which expects it never to raise
            if severity == trt.ILogger.Severity.VERBOSE:
                return
            self.lines.append(f"[{getattr(severity, 'name', severity)}] {msg}")
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)

    return RecordingLogger()


class BuildFailed(HrnextError):
    """The builder refused the ONNX: ``text`` says why; the message adds where the build's log is."""

    def __init__(self, text: str, log_path: Path):
        self.text = text
        super().__init__(f"{text} (log: {log_path})")


def _strongly_typed_network(trt, builder):
    flag = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    network = builder.create_network(0)
    if not network.get_flag(flag):  # TensorRT 10: strongly typed only when asked
        network = builder.create_network(1 << int(flag))
    return network


def build_engine(builder_name: str, onnx_path: Path, engine_path: Path, log_path: Path, input_size: tuple[int, int],
                 batch: tuple[int, int, int], workspace_gb: float, timing_cache: Path | None, tf32: bool,
                 targets: tuple[str, ...] = ()) -> dict:
    """Build ``engine_path`` from ``onnx_path`` with ``builder_name``; returns the manifest's build record.

    ``tf32``: let float32 convolutions round their inputs to TF32 (TensorRT's default).
    ``targets``: compute capabilities (TensorRT for RTX; TensorRT builds for the GPU present).
    ``timing_cache``: TensorRT's timing cache file, reused and updated (TensorRT for RTX has none).
    """
    trt = import_builder(builder_name)
    start = time.perf_counter()
    logger = _recording_logger(trt)
    try:
        record = _build(trt, builder_name, logger, onnx_path, engine_path, log_path, input_size, batch, workspace_gb,
                        timing_cache, tf32, targets)
    finally:
        log_path.write_text("\n".join(logger.lines) + "\n", encoding="utf-8")
    return {"builder": builder_name, "builder_version": trt.__version__, "targets": list(targets),
            "seconds": round(time.perf_counter() - start, 2), "tf32": tf32, **record}


def _build(trt, builder_name: str, logger, onnx_path: Path, engine_path: Path, log_path: Path,
           input_size: tuple[int, int], batch: tuple[int, int, int], workspace_gb: float, timing_cache: Path | None,
           tf32: bool, targets: tuple[str, ...]) -> dict:
    title = f"{TITLES[builder_name]} {trt.__version__}"
    builder = trt.Builder(logger)
    network = _strongly_typed_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise BuildFailed(f"{title} cannot parse {onnx_path.name}: {_parser_error(parser)}; the ONNX needs operators "
                          "the parser supports", log_path)
    onnx_nodes = _onnx_node_count(onnx_path)
    profile_shapes = [(b, 3, *input_size) for b in batch]
    _check_profile_fits(network, onnx_path, profile_shapes)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer details for the engine inspector
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if builder_name == TENSORRT_RTX:
        config.num_compute_capabilities = len(targets)
        for index, capability in enumerate(targets):
            config.set_compute_capability(compute_capability_enum(trt, capability), index)
    cached = _load_timing_cache(config, timing_cache) if timing_cache is not None else b""
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *profile_shapes)
    config.add_optimization_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = logger.errors[-1] if logger.errors else "no error was logged"
        raise BuildFailed(f"{title} failed to build {engine_path.name}: {reason}", log_path)
    engine_path.write_bytes(serialized)
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(config.get_timing_cache().serialize())
    return {"timing_cache_reused": bool(cached) if timing_cache is not None else None,
            "onnx_nodes": onnx_nodes, "parsed": True,
            "profile": {INPUT_NAME: dict(zip(("min", "opt", "max"), (list(s) for s in profile_shapes)))},
            "network": network_report(trt, network)}


def _parser_error(parser) -> str:
    """The parser's first error as one line: node number, operator, name and what is wrong."""
    if not parser.num_errors:
        return "unknown error"
    error = parser.get_error(0)
    what = error.code().name.lower().replace("_", " ")  # e.g. "unsupported node"
    desc = " ".join(error.desc().split())
    if desc and desc != "false":  # the parser's checkers often report just "false"
        what += f" ({desc})"
    if error.node() < 0:
        return what
    name = f" {error.node_name()!r}" if error.node_name() else ""
    return f"node {error.node()} ({error.node_operator()}{name}): {what}"


def _onnx_node_count(onnx_path: Path) -> int:
    import onnx

    return len(onnx.load(str(onnx_path), load_external_data=False).graph.node)


def _check_profile_fits(network, onnx_path: Path, profile_shapes: list[tuple]) -> None:
    """Every fixed dimension of the ONNX input must equal the profile's (the batch axis is free)."""
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name != INPUT_NAME:
            raise HrnextError(f"{onnx_path.name} has input {tensor.name!r}, not {INPUT_NAME!r}: build engines from "
                              "hrnext-trt's ONNX export")
        shape = tuple(tensor.shape)
        for profile_shape in profile_shapes:
            if len(shape) != len(profile_shape) or any(d >= 0 and d != p for d, p in zip(shape, profile_shape)):
                have = "x".join("?" if d < 0 else str(d) for d in shape)
                raise HrnextError(f"the batch profile shape {profile_shape} does not fit input {INPUT_NAME!r} "
                                  f"({have}) of {onnx_path.name}: build with the input size it was exported at")


def _load_timing_cache(config, timing_cache: Path) -> bytes:
    """Start from the cache file; returns its bytes (empty when new)."""
    cached = timing_cache.read_bytes() if timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
        # A cache from another GPU or TensorRT version cannot be used: say so and start a new one.
        log.warning("timing cache %s was made on another GPU or TensorRT version: starting a new one", timing_cache)
        cached = b""
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return cached


def layer_precision(trt, layer, producer_types: dict) -> str:
    """What a layer of the strongly typed network computes in.

    Q/DQ layers and constants (weights, shape values) are their own kinds; a layer whose data input
    comes from a DequantizeLinear is ``int8`` (the builder fuses the DQ into an int8 kernel); any
    other layer computes in its first input's dtype (``int64``/``int32``: shape arithmetic).
    """
    if layer.type in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE):
        return "q/dq"
    first = layer.get_input(0) if layer.num_inputs else None
    if layer.type == trt.LayerType.CONSTANT or first is None:
        return "constant"
    if producer_types.get(first.name) == trt.LayerType.DEQUANTIZE:
        return "int8"
    return dtype_name(first.dtype)


def network_report(trt, network) -> dict:
    """Layers by type and by precision, and the I/O tensors, of a parsed strongly typed network."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    producer_types = {layer.get_output(k).name: layer.type for layer in layers for k in range(layer.num_outputs)}

    def io(tensor):
        return {"name": tensor.name, "dtype": dtype_name(tensor.dtype), "shape": list(tensor.shape)}

    by_type = Counter(layer.type.name.lower() for layer in layers)
    by_precision = Counter(layer_precision(trt, layer, producer_types) for layer in layers)
    return {"layers": len(layers), "by_type": dict(by_type.most_common()),
            "by_precision": dict(by_precision.most_common()),
            "inputs": [io(network.get_input(i)) for i in range(network.num_inputs)],
            "outputs": [io(network.get_output(i)) for i in range(network.num_outputs)]}
