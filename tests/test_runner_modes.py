"""PyTorch modes (TorchMode): what a GPU benchmark sweeps, parsed once and checked on the CPU where
the arithmetic allows (channels_last and the static DKA form are exact rearrangements; bf16 is
close); TF32 and FP16 autocast are CUDA modes and refused on the CPU in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.errors import HrnextError
from hrnext_trt.models import build_pose_model
from hrnext_trt.runners.pytorch import HostStaging, PyTorchRunner, TorchMode, restore_tf32, set_tf32, tf32_flags


def test_modes_parse_to_fields_and_back_to_one_label():
    mode = TorchMode.parse("fp16+compile-ro+channels_last")
    assert (mode.precision, mode.channels_last, mode.compile, mode.tf32) == ("fp16", True, "reduce-overhead", False)
    assert mode.label == "fp16+channels_last+compile-ro" and TorchMode.parse(mode.label) == mode
    assert TorchMode.parse("fp32") == TorchMode() and TorchMode().description == ""
    assert TorchMode.parse("bf16+tf32+static").description == "TF32 static DKA"


@pytest.mark.parametrize("text, message", [("int8", "must start with a precision"),
                                           ("fp16+fast", "unknown flag 'fast'"),
                                           ("fp32+compile+compile-ro", "sets compile twice"),
                                           ("fp32+grouped+static", "sets dka_mode twice")])
def test_bad_modes_are_one_line(text, message):
    with pytest.raises(HrnextError, match=message):
        TorchMode.parse(text)


def test_cuda_only_modes_are_refused_on_the_cpu():
    model = build_pose_model("hrnext_tiny", 14)
    with pytest.raises(HrnextError, match="TF32 is a CUDA mode"):
        PyTorchRunner.from_mode(model, TorchMode.parse("fp32+tf32"), "cpu")
    with pytest.raises(HrnextError, match="needs --device cuda"):
        PyTorchRunner.from_mode(model, TorchMode.parse("fp16"), "cpu")


def test_layout_and_dka_modes_give_the_same_heatmaps_as_plain_fp32():
    torch.manual_seed(0)
    model = build_pose_model("hrnext_tiny", 14).eval()
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)

    def heatmaps(text):
        with PyTorchRunner.from_mode(model, TorchMode.parse(text), "cpu", threads=1) as runner:
            return runner.heatmap_fn()(images)

    reference = heatmaps("fp32")
    scale = np.abs(reference).max()
    for text in ("fp32+channels_last", "fp32+static", "fp32+channels_last+static"):
        assert np.abs(heatmaps(text) - reference).max() <= 1e-4 * scale, text
    assert np.abs(heatmaps("bf16") - reference).max() <= 0.1 * scale  # bf16 keeps 8 bits of mantissa
    assert model.training is False  # the runner leaves a handed-over module in eval mode


def test_bench_rows_name_their_mode(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "hrnext_tiny", "--input-size", "64x64", "--batch", "1",
                                       "--backends", "pytorch", "--torch-precisions", "fp32+channels_last+static,fp32",
                                       "--iters", "1", "--warmup", "0", "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["backend"], r["precision"], r["notes"]) for r in rows] == [
        ("pytorch", "fp32", "channels_last static DKA"), ("pytorch", "fp32", "")]
    # Speed-ups are over plain FP32 eager wherever it is listed (was: over the first row listed).
    assert rows[1]["speedup"] == pytest.approx(1.0)
    assert rows[0]["speedup"] == pytest.approx(rows[1]["p50_ms"] / rows[0]["p50_ms"])
    bad = CliRunner().invoke(main, ["bench", "hrnext_tiny", "--torch-precisions", "fp32+turbo"])
    assert bad.exit_code == 2 and "unknown flag 'turbo'" in bad.output


@pytest.fixture
def tf32_untouched():
    flags = tf32_flags()
    yield
    restore_tf32(flags)


def test_tf32_flags_set_and_restore_after_the_process_used_the_new_api(tf32_untouched):
    # PyTorch >= 2.9 raises when its legacy allow_tf32 flags are read after the new fp32_precision
    # API was used (a user's script, or a library, may have): the CUDA runner must neither read
    # them nor leave the process changed. These flags are settable on a CPU-only build.
    if not hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        pytest.skip(f"torch {torch.__version__} predates the fp32_precision API")
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "ieee"  # legacy reads now raise: the mix
    before = tf32_flags()
    set_tf32(False)
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("ieee", "ieee")
    set_tf32(True)
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("tf32", "tf32")
    restore_tf32(before)
    assert tf32_flags() == before == ("new", "tf32", "ieee")


@pytest.mark.parametrize("dka_mode", ["grouped", "static"])
def test_model_is_captured_whole_for_torch_compile(dka_mode):
    # bench's +compile and +compile-ro (CUDA graphs) modes need TorchDynamo to capture the model as
    # one graph: a break runs eager code between graphs and splits the CUDA graph. Capture does not
    # depend on the device, so the CPU checks it; the compiler backend itself is not run here.
    torch._dynamo.reset()
    model = build_pose_model("hrnext_tiny", 14).eval().set_dka_mode(dka_mode)
    with torch.inference_mode():
        explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 64, 48))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


class _FailsToMove(torch.nn.Module):
    """A model whose move to the device fails (as a CUDA out-of-memory would, there)."""

    def to(self, *args, **kwargs):
        raise RuntimeError("out of memory")


def test_failed_activation_puts_back_the_process_settings_it_changed():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runner = PyTorchRunner(_FailsToMove(), threads=1)
        with pytest.raises(RuntimeError, match="out of memory"):
            runner.activate()
        assert torch.get_num_threads() == 2 and not runner.is_active
    finally:
        torch.set_num_threads(before)


def test_host_staging_buffers_are_reused_and_grow_to_the_largest_batch():
    # A CUDA call copies through these (page-locked there); the same logic, unpinned, here.
    staging = HostStaging(pinned=False)
    small = staging.view("input", (2, 3, 4, 4))
    large = staging.view("input", (8, 3, 4, 4))
    again = staging.view("input", (2, 3, 4, 4))
    assert small.shape == again.shape == (2, 3, 4, 4) and large.shape == (8, 3, 4, 4)
    assert again.data_ptr() == large.data_ptr()  # grown once, then reused
    assert staging.view("output", (1, 2)).data_ptr() != large.data_ptr()  # one buffer per name
    assert small.dtype == torch.float32 and not small.is_pinned()
