"""Runners: lifecycle, ONNX Runtime numerics, clear one-line errors, unavailable backends."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hrnext_trt.contract import installed_builders
from hrnext_trt.errors import HrnextError
from hrnext_trt.contract import nvidia_gpu_present, onnxruntime_cuda_libraries_reason, unavailable_reason
from hrnext_trt.cli.params import parse_backends
from hrnext_trt.runners import BackendUnavailable, runner_class
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner, read_onnx_metadata, session_providers

H, W, J = 32, 24, 3


def write_conv_onnx(path, weight: np.ndarray, height=H, width=W, batch="batch", output="heatmaps",
                    metadata: str | None = None):
    """A one-Conv ONNX with the project's I/O names: images (B,3,H,W) -> heatmaps (B,J,H/4,W/4);
    ``batch`` a fixed size or a symbol, ``output`` the output's name, ``metadata`` the raw metadata."""
    node = helper.make_node("Conv", ["images", "w"], [output], kernel_shape=[4, 4], strides=[4, 4])
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, J, height // 4, width // 4])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"hrnext_trt": metadata if metadata is not None else
                                   json.dumps({"precision": "fp32", "input_size": [height, width]})})
    onnx.save(model, str(path))
    return path


def conv_reference(images, weight):
    b = images.shape[0]
    patches = images.reshape(b, 3, H // 4, 4, W // 4, 4)
    return np.einsum("bcyixj,kcij->bkyx", patches, weight)


@pytest.fixture()
def conv_onnx(tmp_path):
    weight = np.random.default_rng(0).standard_normal((J, 3, 4, 4)).astype(np.float32)
    return write_conv_onnx(tmp_path / "model.onnx", weight), weight


def test_onnxruntime_runner_lifecycle_and_numerics(conv_onnx):
    path, weight = conv_onnx
    runner = OnnxRuntimeRunner(path, "fp32", threads=1)
    assert (runner.name, runner.backend, runner.precision, runner.device) == ("onnxruntime-fp32", "onnxruntime",
                                                                              "fp32", "cpu")
    images = np.random.default_rng(1).standard_normal((2, 3, H, W)).astype(np.float32)
    with pytest.raises(HrnextError, match="not active"):
        runner.infer({"images": images})
    with runner:
        assert runner.is_active and runner.input_shape == (3, H, W)
        out = runner.infer({"images": images})
        heatmaps = runner.heatmap_fn()(images[:1])
    assert not runner.is_active
    assert set(out) == {"heatmaps"} and out["heatmaps"].dtype == np.float32
    np.testing.assert_allclose(out["heatmaps"], conv_reference(images, weight), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(heatmaps, out["heatmaps"][:1], rtol=1e-5, atol=1e-6)


def test_onnxruntime_runner_rejects_another_input_shape_in_one_line(conv_onnx):
    path, _ = conv_onnx
    with OnnxRuntimeRunner(path, "fp32") as runner:
        with pytest.raises(HrnextError) as err:
            runner.infer({"images": np.zeros((1, 3, 64, 48), np.float32)})
    assert "(B, 3x32x24)" in str(err.value) and "\n" not in str(err.value)


def test_onnx_files_of_other_tools_run_or_are_one_line(tmp_path):
    """A fixed batch size runs in chunks of it (was an ONNX Runtime traceback at any other batch);
    another output name, metadata that is no JSON object, an empty file: one line each (were a
    KeyError, a JSONDecodeError, an IndexError)."""
    weight = np.random.default_rng(1).standard_normal((J, 3, 4, 4)).astype(np.float32)
    images = np.random.default_rng(2).standard_normal((5, 3, H, W)).astype(np.float32)
    for batch in (1, 2):
        with OnnxRuntimeRunner(write_conv_onnx(tmp_path / f"b{batch}.onnx", weight, batch=batch), "fp32") as runner:
            heatmaps = runner.infer({"images": images})["heatmaps"]
        np.testing.assert_allclose(heatmaps, conv_reference(images, weight), rtol=1e-4, atol=1e-4)
    with pytest.raises(HrnextError, match=r"has outputs \['out'\], not 'heatmaps'"):
        OnnxRuntimeRunner(write_conv_onnx(tmp_path / "out.onnx", weight, output="out"), "fp32").activate()
    for raw in ("{not json", "[1, 2]"):
        with pytest.raises(HrnextError, match="metadata that is not a JSON object: the file was edited"):
            read_onnx_metadata(write_conv_onnx(tmp_path / "meta.onnx", weight, metadata=raw))
    from hrnext_trt.predict.model import load_pose_network

    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(HrnextError, match=r"empty.onnx is not a pose network's ONNX file \(0 inputs, 0 outputs"):
        load_pose_network(tmp_path / "empty.onnx", "cpu", 1, 4)
    # Channels last: said so (was read as a 64x3 crop size).
    nodes = [helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w"], ["heatmaps"], kernel_shape=[4, 4], strides=[4, 4])]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, H, W, 3])],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, J, H // 4, W // 4])],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "nhwc.onnx"))
    with pytest.raises(HrnextError, match=r"takes input of shape \[1, 32, 24, 3\]: expected \(batch, 3, H, W\)"):
        load_pose_network(tmp_path / "nhwc.onnx", "cpu", 1, 4)
    # A folder without a manifest: each file's own precision over its name (a copied INT8 file).
    from hrnext_trt.runners.export_folder import discover_artifacts

    copied = tmp_path / "copied"
    copied.mkdir()
    write_conv_onnx(copied / "model.onnx", weight, metadata=json.dumps({"precision": "int8", "input_size": [H, W]}))
    assert [(a.path.name, a.precision) for a in discover_artifacts(copied)] == [("model.onnx", "int8")]


def test_missing_onnx_file_is_one_clear_line(tmp_path):
    with pytest.raises(HrnextError) as err:
        OnnxRuntimeRunner(tmp_path / "model_int8.onnx", "int8").activate()
    assert "model_int8.onnx does not exist" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(HrnextError, match="does not exist"):
        read_onnx_metadata(tmp_path / "nothing.onnx")


def test_onnx_metadata_is_read(conv_onnx):
    assert read_onnx_metadata(conv_onnx[0]) == {"precision": "fp32", "input_size": [H, W]}


def test_cuda_provider_is_refused_without_a_gpu(conv_onnx):
    reason = unavailable_reason("onnxruntime", "cuda")
    if nvidia_gpu_present():  # runs, or says in one line what to install (a CPU build, CUDA libraries)
        assert reason is None or ("pip install" in reason and "\n" not in reason)
    else:
        assert reason == "no NVIDIA GPU on this machine"
        with pytest.raises(BackendUnavailable, match="no NVIDIA GPU"):
            OnnxRuntimeRunner(conv_onnx[0], "fp32", device="cuda").activate()


def test_onnxruntime_cuda_sessions_compute_in_ieee_float32():
    # ONNX Runtime's CUDA provider rounds float32 convolutions to TF32 by default (use_tf32): FP32
    # rows must compute what PyTorch's FP32 reference and the FP32 engine compute.
    providers = session_providers("cuda")
    assert providers == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    assert session_providers("cuda", tf32=True)[0] == ("CUDAExecutionProvider", {"use_tf32": "1"})
    assert session_providers("cpu") == ["CPUExecutionProvider"]


def test_cuda_libraries_onnxruntime_cannot_load_are_named():
    # onnxruntime-gpu's CUDA provider needs the runtime libraries of the CUDA it was built for, which
    # it does not find by itself unless a torch of the same CUDA was imported first: its preload
    # runs, and what failed to load is named with how to get it (here, a machine without CUDA).
    import onnxruntime
    from onnxruntime.capi import build_and_package_info as build

    cuda = getattr(build, "cuda_version", "")
    if not cuda:
        pytest.skip("this onnxruntime is a CPU build")
    if (Path(onnxruntime.__file__).parents[1] / "nvidia").exists():
        pytest.skip("NVIDIA's CUDA library wheels are installed beside onnxruntime here")
    major = cuda.split(".")[0]
    try:
        ctypes.CDLL(f"libcudart.so.{major}")
        pytest.skip(f"this machine has the CUDA {major} runtime")
    except OSError:
        pass
    reason = onnxruntime_cuda_libraries_reason()
    assert f"built for CUDA {cuda}" in reason and f"libcudart.so.{major}" in reason
    assert "libcufft" not in reason  # not needed by this network: never a reason
    assert 'pip install "onnxruntime-gpu[cuda,cudnn]"' in reason and "\n" not in reason


def test_tensorrt_reports_why_it_cannot_run(tmp_path):
    reason = unavailable_reason("tensorrt", "cuda")
    if not installed_builders():
        assert reason == ('neither TensorRT (pip install "hrnext-trt[trt]") nor TensorRT for RTX '
                          '(pip install "hrnext-trt[trt-rtx]") is installed')
    elif not nvidia_gpu_present():
        assert reason == "no NVIDIA GPU on this machine"
    runner = runner_class("tensorrt")(tmp_path / "model_fp16.engine", "fp16")
    assert (runner.backend, runner.device, runner.precision) == ("tensorrt", "cuda", "fp16")
    with pytest.raises(HrnextError, match="model_fp16.engine does not exist"):
        runner.activate()


def test_backend_names_are_validated():
    assert parse_backends(None) == ["pytorch", "onnxruntime", "tensorrt"]
    assert parse_backends("onnxruntime, pytorch") == ["onnxruntime", "pytorch"]
    with pytest.raises(HrnextError, match="unknown backend 'ort'"):
        parse_backends("pytorch,ort")
    with pytest.raises(HrnextError, match="precision 'fp8'"):
        OnnxRuntimeRunner("x.onnx", "fp8")


def test_pytorch_runner_runs_the_fastest_eager_dka_form_and_matches_the_model():
    import torch

    from hrnext_trt.models import DEFAULT_DKA_MODE, build_pose_model
    from hrnext_trt.models.dka import DynamicConv2d
    from hrnext_trt.runners.pytorch import PyTorchRunner

    torch.manual_seed(0)
    model = build_pose_model("hrnext_tiny", 14).eval().set_dka_mode("static")  # as export leaves a copy
    images = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(images)).numpy()
    runner = PyTorchRunner(model, threads=1)
    assert (runner.name, runner.backend, runner.precision, runner.device) == ("pytorch-fp32", "pytorch", "fp32",
                                                                              "cpu")
    with runner:
        modes = {m.mode for m in runner.module.modules() if isinstance(m, DynamicConv2d)}
        heatmaps = runner.infer({"images": images})["heatmaps"]
    assert modes == {DEFAULT_DKA_MODE} and runner.module is None
    assert heatmaps.shape == (2, 14, 16, 16) and heatmaps.dtype == np.float32
    np.testing.assert_allclose(heatmaps, expected, rtol=1e-4, atol=1e-5)
    # Crops channels last, unbatched or as a list: one line, as every backend says it (were torch's errors).
    with runner:
        for bad, got in ((images.transpose(0, 2, 3, 1), r"\(2, 64, 64, 3\)"), (images[0], r"\(3, 64, 64\)"),
                         (images.tolist(), "list")):
            with pytest.raises(HrnextError, match=rf"takes normalised crops as an array of shape \(B, 3, H, W\), "
                                                  rf"got .*{got}"):
                runner.infer({"images": bad})

    with pytest.raises(HrnextError, match="needs --device cuda"):
        PyTorchRunner(model, "fp16", "cpu")
    with pytest.raises(HrnextError, match="no int8 mode"):
        PyTorchRunner(model, "int8")
