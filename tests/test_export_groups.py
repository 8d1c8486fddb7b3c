"""Node names -> network parts, and per-consumer Q/DQ surgery on a small hand-made graph."""

from __future__ import annotations

import numpy as np
import pytest

from hrnext_trt.errors import HrnextError
from hrnext_trt.export.groups import group_nodes

NAMES = [
    "/backbone/conv1/Conv",
    "/backbone/layer1/blocks/blocks.0/dlp/conv/attention/conv1/Conv",
    "/backbone/layer1/blocks/blocks.0/dlp/conv/Conv",
    "/backbone/layer1/blocks/blocks.0/gffn/proj1/Conv",
    "/backbone/transition1.1/transition1.1.0/transition1.1.0.0/Conv",
    "/backbone/stage3/stage3.1/branches.2/blocks/blocks.1/dffn/fc1/attention/GlobalAveragePool",
    "/backbone/stage3/stage3.1/branches.2/blocks/blocks.1/dffn/fc1/MatMul",
    "/backbone/stage3/stage3.1/branches.2/blocks/blocks.1/Add",
    "/backbone/stage3/stage3.1/branches.2/norm/LayerNormalization",
    "/backbone/stage3/stage3.1/fuse_layers.0.2/fuse_layers.0.2.0/Conv",
    "/backbone/stage3/stage3.1/Add_3",
    "/head/Conv",
]


def test_parts_by_level():
    assert list(group_nodes(NAMES, "part")) == [
        "stem", "stage1.b0.blk0.attention", "stage1.b0.blk0.kernels", "stage1.b0.blk0.convs", "stage2.transition",
        "stage3.m1.b2.blk1.attention", "stage3.m1.b2.blk1.kernels", "stage3.m1.b2.blk1.convs", "stage3.m1.b2.norm",
        "stage3.m1.fuse", "head"]
    assert list(group_nodes(NAMES, "block"))[1:3] == ["stage1.b0.blk0", "stage2.transition"]
    assert group_nodes(NAMES, "branch")["stage3.m1.fuse"] == NAMES[9:11]
    assert list(group_nodes(NAMES, "stage")) == ["stem", "stage1", "stage2", "stage3", "head"]
    with pytest.raises(HrnextError, match="level"):
        group_nodes(NAMES, "layer")


def _qdq_graph():
    """x -> Q/DQ (shared by two convs) -> conv a, conv b -> add -> y; weights through their own Q/DQ."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.float32(0.02), "s"), numpy_helper.from_array(np.int8(0), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_x")]
    for conv in ("a", "b"):
        inits.append(numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), f"w{conv}"))
        nodes += [helper.make_node("QuantizeLinear", [f"w{conv}", "s", "z"], [f"w{conv}q"], name=f"q_w{conv}"),
                  helper.make_node("DequantizeLinear", [f"w{conv}q", "s", "z"], [f"w{conv}d"], name=f"dq_w{conv}"),
                  helper.make_node("Conv", ["xd", f"w{conv}d"], [conv], name=f"/backbone/conv{conv}/Conv",
                                   pads=[1, 1, 1, 1])]
    nodes.append(helper.make_node("Add", ["a", "b"], ["y"], name="/backbone/add/Add"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_surgery_unhooks_one_consumer_of_a_shared_pair():
    import onnx

    from hrnext_trt.export.precision_plan import apply_plan, quantized_nodes, read_plan, restrict_int8

    model = _qdq_graph()
    onnx.checker.check_model(model)
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    groups = {"a": ["/backbone/conva/Conv"], "b": ["/backbone/convb/Conv"]}
    only_a = restrict_int8(model, {"/backbone/conva/Conv"})
    assert quantized_nodes(only_a) == ["/backbone/conva/Conv"]
    assert {n.name for n in only_a.graph.node} >= {"q_x", "dq_x", "q_wa"} and "q_wb" not in {
        n.name for n in only_a.graph.node}
    float_model = restrict_int8(model, set())
    assert not [n for n in float_model.graph.node if "Quantize" in n.op_type]
    y_float, y_a, y_full = _run(float_model, x), _run(only_a, x), _run(model, x)
    assert 0 < np.abs(y_a - y_float).max() < np.abs(y_full - y_float).max()
    mixed = apply_plan(model, groups, {"a": "int8", "b": "fp16"})
    onnx.checker.check_model(mixed)
    assert read_plan(mixed, groups) == {"a": "int8", "b": "fp16"}
    assert np.abs(_run(mixed, x) - y_a).max() < 1e-2 * np.abs(y_a).max()
