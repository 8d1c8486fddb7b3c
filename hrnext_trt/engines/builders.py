"""NVIDIA's two engine builders behind one name each: TensorRT (``tensorrt``) and TensorRT for RTX.

Both expose TensorRT's Python API (Builder, OnnxParser, Runtime, ``execute_async_v3``); they are
told apart by the module that provides them, never by version number (TensorRT for RTX reports
1.x). TensorRT for RTX's PyPI wheel imports as ``tensorrt_rtx_bindings``, its SDK's wheel as
``tensorrt_rtx``. What differs and matters here:

- TensorRT builds for the GPU it runs on and needs one to build; its engines run on that GPU
  model only. TensorRT for RTX builds without a GPU, for a list of compute capabilities
  (``targets``), and compiles kernels when an execution context is created (on the GPU).
- TensorRT reuses a timing cache across builds; TensorRT for RTX has none (its timing-cache calls
  do nothing) and keeps a runtime cache of compiled kernels instead, on the GPU side.
"""

from __future__ import annotations

import importlib
import logging

from hrnext_trt import contract
from hrnext_trt.contract import (BUILDER_MODULES, NO_BUILDER, TRT_INSTALL_HINT, TRT_RTX_INSTALL_HINT,
                                 builder_module_name)
from hrnext_trt.errors import HrnextError

log = logging.getLogger(__name__)

TENSORRT, TENSORRT_RTX = "tensorrt", "tensorrt-rtx"
BUILDERS = tuple(BUILDER_MODULES)  # (TENSORRT, TENSORRT_RTX)
TITLES = {TENSORRT: "TensorRT", TENSORRT_RTX: "TensorRT for RTX"}
INSTALL_HINTS = {TENSORRT: TRT_INSTALL_HINT, TENSORRT_RTX: TRT_RTX_INSTALL_HINT}

# Compute capabilities TensorRT for RTX 1.x builds for (its ComputeCapability enum: SM75 ... SM121).
RTX_COMPUTE_CAPABILITIES = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
# Targets of an RTX build on a machine without a GPU: the builder's own default set (Ampere, Ada,
# Blackwell RTX), written out so the manifest says exactly what the engine runs on.
RTX_DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0")


def check_builder_name(builder: str) -> str:
    if builder not in BUILDERS:
        raise HrnextError(f"engine builder {builder!r} is unknown: choose {' or '.join(BUILDERS)}")
    return builder


def import_builder(builder: str):
    """The module of ``builder`` (``tensorrt`` or TensorRT for RTX's); one clear line when missing."""
    name = builder_module_name(check_builder_name(builder))
    if name is None:
        raise HrnextError(f"{TITLES[builder]} is not installed: {INSTALL_HINTS[builder]}")
    return importlib.import_module(name)


def builder_version(builder: str) -> str:
    return import_builder(builder).__version__


def choose_builder(requested: str | None, gpu_present: bool) -> tuple[str | None, str | None]:
    """``(builder, None)`` for the export to use, or ``(None, reason)`` when no engine can be built here.

    Without a request: TensorRT where it and a GPU exist (engines tuned for this GPU), else
    TensorRT for RTX where installed (it builds without a GPU), else none.
    """
    installed = contract.installed_builders()
    if requested is not None:
        check_builder_name(requested)
        if requested not in installed:
            return None, f"{TITLES[requested]} is not installed ({INSTALL_HINTS[requested]})"
        if requested == TENSORRT and not gpu_present:
            return None, ("TensorRT builds only on a machine with an NVIDIA GPU; TensorRT for RTX builds "
                          "without one (--builder tensorrt-rtx)")
        return requested, None
    if TENSORRT in installed and gpu_present:
        return TENSORRT, None
    if TENSORRT_RTX in installed:
        return TENSORRT_RTX, None
    if TENSORRT in installed:
        return None, ("TensorRT builds only on a machine with an NVIDIA GPU; TensorRT for RTX builds without "
                      f"one ({INSTALL_HINTS[TENSORRT_RTX]})")
    return None, NO_BUILDER


def parse_compute_capabilities(text: str) -> tuple[str, ...]:
    """``"8.6,8.9"`` -> ("8.6", "8.9"), each one TensorRT for RTX builds for."""
    values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [v for v in values if v not in RTX_COMPUTE_CAPABILITIES]
    if not values or unknown:
        raise HrnextError(f"compute capability {unknown[0] if unknown else text!r} is not one TensorRT for RTX builds "
                          f"for: choose from {', '.join(RTX_COMPUTE_CAPABILITIES)} (e.g. 8.6,8.9)")
    return values


def rtx_targets(requested: tuple[str, ...] | None, gpu: dict | None) -> tuple[str, ...]:
    """The compute capabilities an RTX engine is built for: those asked, else this GPU's, else the default set."""
    if requested:
        return parse_compute_capabilities(",".join(requested))
    if gpu is not None:
        capability = gpu["compute_capability"]
        if capability in RTX_COMPUTE_CAPABILITIES:
            return (capability,)
        log.warning("this GPU (%s, compute capability %s) is not one TensorRT for RTX builds for: building for %s, "
                    "which will not run here (TensorRT builds for this GPU: --builder tensorrt)", gpu["name"],
                    capability, ", ".join(RTX_DEFAULT_TARGETS))
    return RTX_DEFAULT_TARGETS


def compute_capability_enum(trt, capability: str):
    """``"8.6"`` -> ``trt.ComputeCapability.SM86`` (TensorRT for RTX only)."""
    return trt.ComputeCapability.__members__["SM" + capability.replace(".", "")]
