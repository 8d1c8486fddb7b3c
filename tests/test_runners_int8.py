"""INT8 (Q/DQ) ONNX in ONNX Runtime gives TensorRT's arithmetic on any x86-64 CPU.

ONNX Runtime's default fuses DQ -> Conv -> Q into a u8s8 integer convolution; on CPUs without
VNNI (AVX2 only) its pairwise 16-bit sums saturate once int8 activations and weights are both
large. The graph below is built so that they are (measured here, fused: 26 % relative error),
and the runner must still return the exact Q/DQ arithmetic TensorRT performs.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner

CHANNELS, OUT, SIDE = 64, 8, 8
ACT_SCALE, WEIGHT_SCALE, OUT_SCALE = 0.02, 0.01, 2.0


def quantize(x, scale):
    return np.clip(np.round(x / scale), -128, 127)


def write_qdq_conv(path, weight: np.ndarray):
    """images -> Q/DQ -> 1x1 Conv (Q/DQ weights) -> Q/DQ -> heatmaps: the pattern ModelOpt writes."""
    nodes = [
        helper.make_node("QuantizeLinear", ["images", "a_scale", "zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "a_scale", "zero"], ["x"]),
        helper.make_node("QuantizeLinear", ["w", "w_scale", "w_zero"], ["w_q"], axis=0),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=0),
        helper.make_node("Conv", ["x", "w_dq"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "o_scale", "zero"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "o_scale", "zero"], ["heatmaps"]),
    ]
    inits = [numpy_helper.from_array(weight, "w"),
             numpy_helper.from_array(np.full(OUT, WEIGHT_SCALE, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(OUT, np.int8), "w_zero"),
             numpy_helper.from_array(np.array(ACT_SCALE, np.float32), "a_scale"),
             numpy_helper.from_array(np.array(OUT_SCALE, np.float32), "o_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "zero")]
    graph = helper.make_graph(
        nodes, "qdq_conv", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", CHANNELS, SIDE, SIDE])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", OUT, SIDE, SIDE])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_int8_qdq_runs_as_tensorrt_computes_it(tmp_path):
    rng = np.random.default_rng(0)
    # int8 values near +127 on both sides: pairs of products overflow int16 in u8s8 kernels.
    weight = (rng.integers(100, 128, size=(OUT, CHANNELS, 1, 1)) * WEIGHT_SCALE).astype(np.float32)
    images = rng.uniform(2.0, 2.54, size=(2, CHANNELS, SIDE, SIDE)).astype(np.float32)
    # TensorRT: int8 x int8 products summed exactly (int32), scaled, then the output Q/DQ.
    acc = np.einsum("bchw,kc->bkhw", quantize(images, ACT_SCALE), quantize(weight, WEIGHT_SCALE)[:, :, 0, 0])
    expected = quantize(acc * ACT_SCALE * WEIGHT_SCALE, OUT_SCALE) * OUT_SCALE
    assert np.abs(expected).max() < 127 * OUT_SCALE  # the output range itself does not clip

    with OnnxRuntimeRunner(write_qdq_conv(tmp_path / "int8.onnx", weight), "int8") as runner:
        heatmaps = runner.infer({"images": images})["heatmaps"]
    # Float32 summation may round a tie the other way: at most one output step, anywhere.
    assert np.abs(heatmaps - expected).max() <= OUT_SCALE
    assert np.linalg.norm(heatmaps - expected) / np.linalg.norm(expected) < 1e-3
