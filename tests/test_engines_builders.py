"""Which NVIDIA builder an export uses and for which GPUs: pure Python, runs everywhere."""

from __future__ import annotations

import pytest

from hrnext_trt import contract
from hrnext_trt.engines import builders
from hrnext_trt.engines.builders import (RTX_DEFAULT_TARGETS, TENSORRT, TENSORRT_RTX, choose_builder,
                                         parse_compute_capabilities, rtx_targets)
from hrnext_trt.errors import HrnextError

RTX_4090 = {"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}
H100 = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


@pytest.mark.parametrize("installed, requested, gpu, expected", [
    ([TENSORRT, TENSORRT_RTX], None, True, (TENSORRT, None)),  # a GPU: engines tuned for it
    ([TENSORRT, TENSORRT_RTX], None, False, (TENSORRT_RTX, None)),  # no GPU: only RTX builds
    ([TENSORRT_RTX], None, True, (TENSORRT_RTX, None)),
    ([TENSORRT, TENSORRT_RTX], TENSORRT_RTX, True, (TENSORRT_RTX, None)),
    ([TENSORRT], None, False, (None, "TensorRT builds only on a machine with an NVIDIA GPU")),
    ([TENSORRT], TENSORRT, False, (None, "TensorRT builds only on a machine with an NVIDIA GPU")),
    ([], None, True, (None, "neither TensorRT")),
    ([TENSORRT], TENSORRT_RTX, True, (None, 'TensorRT for RTX is not installed (pip install "hrnext-trt[trt-rtx]")')),
])
def test_the_builder_is_chosen_by_what_is_installed_and_the_gpu(monkeypatch, installed, requested, gpu, expected):
    monkeypatch.setattr(contract, "installed_builders", lambda: installed)
    builder, reason = choose_builder(requested, gpu)
    assert builder == expected[0]
    assert (reason is None) if expected[1] is None else reason.startswith(expected[1])


def test_an_unknown_builder_is_one_clear_line():
    with pytest.raises(HrnextError, match="engine builder 'tensorrt-llm' is unknown: choose tensorrt or tensorrt-rtx"):
        choose_builder("tensorrt-llm", False)


def test_rtx_targets_come_from_the_request_the_gpu_or_the_default_set():
    assert rtx_targets(("8.6", "12.0"), H100) == ("8.6", "12.0")
    assert rtx_targets(None, RTX_4090) == ("8.9",)
    assert rtx_targets(None, None) == RTX_DEFAULT_TARGETS == ("8.0", "8.6", "8.9", "12.0")
    assert rtx_targets(None, H100) == RTX_DEFAULT_TARGETS  # TensorRT for RTX cannot target it: the default, warned


@pytest.mark.parametrize("text, expected", [("8.6", ("8.6",)), ("8.6, 8.9,8.6", ("8.6", "8.9")), ("7.5", ("7.5",))])
def test_compute_capabilities_parse(text, expected):
    assert parse_compute_capabilities(text) == expected


@pytest.mark.parametrize("text", ["9.0", "sm86", "", "8.6,10.0"])
def test_a_compute_capability_rtx_does_not_build_for_is_one_clear_line(text):
    with pytest.raises(HrnextError, match="is not one TensorRT for RTX builds for: choose from 7.5, 8.0, 8.6, 8.9, "
                                          "12.0, 12.1") as err:
        parse_compute_capabilities(text)
    assert "\n" not in str(err.value)


def test_the_rtx_module_is_found_by_name_not_version():
    """The PyPI wheel's module is tensorrt_rtx_bindings, the SDK's tensorrt_rtx; TensorRT's is tensorrt."""
    assert contract.BUILDER_MODULES == {TENSORRT: ("tensorrt",), TENSORRT_RTX: ("tensorrt_rtx_bindings", "tensorrt_rtx")}
    if TENSORRT_RTX in contract.installed_builders():
        module = builders.import_builder(TENSORRT_RTX)
        assert module.__name__ in contract.BUILDER_MODULES[TENSORRT_RTX] and hasattr(module, "ComputeCapability")
        assert module.__version__.split(".")[0] == "1"  # TensorRT for RTX 1.x: never compared with TensorRT's 10/11
