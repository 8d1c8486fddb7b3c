"""Per-group precision inside one ONNX graph: which nodes keep their INT8 Q/DQ, which run FP16, which FP32.

TensorRT 11 and TensorRT for RTX build strongly typed networks only, so a precision plan must be
the graph itself: a node is INT8 when its inputs come through Q/DQ pairs, FP16 when its inputs and
weights are float16 (Casts at its border), FP32 otherwise. Everything here starts from ONE
ModelOpt quantization of the whole network and removes Q/DQ pairs (graph surgery), never
re-quantizes:

- the Q/DQ scales are calibrated on the FP32 graph's activations, so a group's pairs are the
  same whether the other groups are quantized or not; re-quantizing per group would recompute
  identical scales at minutes per group;
- the sensitivity measurement and the exported plan then toggle exactly the same pairs: what was
  measured is what is shipped.

A shared DQ (one activation feeding several quantized nodes) is unhooked per consumer: removing a
node from INT8 never changes what its neighbours see.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from hrnext_trt.errors import HrnextError
from hrnext_trt.export.precision import KEEP_FP32

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
PRECISIONS = ("int8", "fp16", "fp32")
FP16_MAX = 65504.0
# Inputs that must keep their type whatever the node's precision (Resize's roi and scales, Reshape's shape).
_DATA_INPUTS = {"Resize": (0,), "Reshape": (0,)}


def _producers(graph) -> dict:
    return {out: node for node in graph.node for out in node.output}


def quantized_nodes(model) -> list[str]:
    """Names of the nodes (not Q/DQ themselves) that read at least one DequantizeLinear output, in graph order."""
    prod = _producers(model.graph)
    return [n.name for n in model.graph.node if n.op_type not in QDQ_OPS
            and any(i in prod and prod[i].op_type == "DequantizeLinear" for i in n.input)]


def fp16_nodes(model) -> list[str]:
    """Names of the compute nodes whose first output is float16 (read back from inferred types)."""
    import onnx

    types = _tensor_types(onnx.shape_inference.infer_shapes(model))
    return [n.name for n in model.graph.node if n.op_type != "Cast" and n.output
            and types.get(n.output[0]) == onnx.TensorProto.FLOAT16]


def restrict_int8(model, keep: set[str]):
    """A copy of ``model`` in which only the nodes named in ``keep`` read Q/DQ; the others read the
    float tensors the pairs were made from. Pairs nobody reads any more are removed."""
    model = copy.deepcopy(model)
    graph = model.graph
    prod = _producers(graph)
    for node in graph.node:
        if node.op_type in QDQ_OPS or node.name in keep:
            continue
        for i, name in enumerate(node.input):
            dq = prod.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = prod.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                raise HrnextError(f"{node.name}: its DequantizeLinear reads {dq.input[0]!r}, not a QuantizeLinear: "
                                  "a plan needs ModelOpt's float-weight Q/DQ pairs (export with hrnext-trt)")
            node.input[i] = q.input[0]
    _remove_dead(graph)
    return model


def _remove_dead(graph, ops=QDQ_OPS) -> None:
    """Drop nodes of ``ops`` whose outputs nobody reads (repeatedly), then unused initializers."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in ops and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _tensor_types(model) -> dict[str, int]:
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


def cast_fp16(model, names: set[str]):
    """A copy of ``model`` in which the nodes named in ``names`` compute in float16: their float inputs
    pass a Cast (weights are stored as float16), their outputs are cast back to float32. The op types
    of ``precision.KEEP_FP32`` stay float32, as in the AutoCast FP16 file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    types = _tensor_types(onnx.shape_inference.infer_shapes(model))
    inits = {i.name: i for i in graph.initializer}
    casted: dict[str, str] = {}  # float32 tensor -> its float16 twin
    new_nodes = []
    for node in graph.node:
        if node.name not in names or node.op_type in KEEP_FP32:
            new_nodes.append(node)
            continue
        data = _DATA_INPUTS.get(node.op_type, range(len(node.input)))
        for i, name in enumerate(node.input):
            if not name or i not in data or types.get(name, TensorProto.FLOAT) != TensorProto.FLOAT:
                continue
            if name not in casted:
                casted[name] = f"{name}__to_fp16"
                if name in inits:
                    array = numpy_helper.to_array(inits[name]).astype(np.float16)
                    graph.initializer.append(numpy_helper.from_array(array, casted[name]))
                else:
                    new_nodes.append(helper.make_node("Cast", [name], [casted[name]], to=TensorProto.FLOAT16,
                                                      name=f"{node.name}/cast_fp16_in{i}"))
            node.input[i] = casted[name]
        new_nodes.append(node)
        for k, out in enumerate(node.output):
            if types.get(out, TensorProto.FLOAT) != TensorProto.FLOAT:
                continue  # an integer output (Shape's) is the same in either precision: no cast
            half = casted[out] = f"{out}__fp16"  # float16 consumers read it directly, without a round trip
            node.output[k] = half
            new_nodes.append(helper.make_node("Cast", [half], [out], to=TensorProto.FLOAT,
                                              name=f"{node.name}/cast_fp32_out{k}"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    _remove_dead(graph, ("Cast",))  # casts back to float32 that only float16 nodes would have read
    return model


def apply_plan(int8_model, groups: dict[str, list[str]], plan: dict[str, str]):
    """The INT8 graph with each group in its planned precision (``plan``: group -> int8/fp16/fp32)."""
    unknown = set(plan.values()) - set(PRECISIONS)
    if unknown:
        raise HrnextError(f"precision plan names {sorted(unknown)}: a group is one of {', '.join(PRECISIONS)}")
    nodes_at = {p: {n for g, nodes in groups.items() if plan.get(g, "int8") == p for n in nodes} for p in PRECISIONS}
    model = restrict_int8(int8_model, nodes_at["int8"])
    return cast_fp16(model, nodes_at["fp16"]) if nodes_at["fp16"] else model


def read_plan(model, groups: dict[str, list[str]]) -> dict[str, str]:
    """What the graph itself runs each group in, from its Q/DQ pairs and inferred float16 tensors:
    group -> int8 / fp16 / fp32, or ``mixed`` when its nodes disagree (the check of a manifest's plan).
    KEEP_FP32 op types stay float32 in an FP16 group and do not count."""
    ops = {n.name: n.op_type for n in model.graph.node}
    int8, half = set(quantized_nodes(model)), set(fp16_nodes(model))
    found = {}
    for group, nodes in groups.items():
        kinds = {"int8" if n in int8 else "fp16" if n in half else "fp32" for n in nodes
                 if not (ops.get(n) in KEEP_FP32 and n not in int8)}
        found[group] = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "fp32"
    return found


def fp16_suits(int8_model, nodes: list[str]) -> bool:
    """Whether ``nodes`` can run in float16: some of them are not KEEP_FP32 op types (a group of
    LayerNorms only stays FP32) and no weight or calibrated activation range exceeds float16's.

    Activation ranges come from the Q/DQ scales (amax = 127 x scale), the calibration's view of
    the tensors these nodes read; weights are read directly."""
    from onnx import numpy_helper

    graph = int8_model.graph
    prod = _producers(graph)
    inits = {i.name: i for i in graph.initializer}
    names = set(nodes)
    wanted = [n for n in graph.node if n.name in names]
    if all(n.op_type in KEEP_FP32 for n in wanted):
        return False
    for node in wanted:
        for name in node.input:
            dq = prod.get(name)
            if dq is not None and dq.op_type == "DequantizeLinear":
                q = prod.get(dq.input[0])
                source = q.input[0] if q is not None else None
                if source in inits:
                    if np.abs(numpy_helper.to_array(inits[source])).max() > FP16_MAX:
                        return False
                elif dq.input[1] in inits and 127 * np.abs(numpy_helper.to_array(inits[dq.input[1]])).max() > FP16_MAX:
                    return False
            elif name in inits and np.abs(numpy_helper.to_array(inits[name]).astype(np.float64)).max() > FP16_MAX:
                return False
    return True


def choose_plan(int8_model, groups: dict[str, list[str]], ranking: list[str], evaluate: Callable[[object], dict],
                budget_px: float, progress: Callable[[str], None] = lambda _: None) -> tuple[dict, list[dict], object]:
    """Greedy: from full INT8, move the most harmful group (``ranking``, worst first) to FP16, or FP32
    where FP16 overflows, until the held-out mean keypoint distance (``evaluate``) is within
    ``budget_px``. Returns (plan group -> precision, steps with each step's accuracy, the graph of
    the plan: the one its last step measured)."""
    return _greedy({g: "int8" for g in groups}, ranking,
                   lambda g: "fp16" if fp16_suits(int8_model, groups[g]) else "fp32",
                   lambda plan: apply_plan(int8_model, groups, plan), evaluate, budget_px, "--int8-budget", progress)


def choose_fp16_plan(fp32_model, groups: dict[str, list[str]], ranking: list[str],
                     evaluate: Callable[[object], dict], budget_px: float,
                     progress: Callable[[str], None] = lambda _: None) -> tuple[dict, list[dict], object]:
    """The FP16 analogue: from everything FP16 (``cast_fp16``; KEEP_FP32 op types stay float32), the
    groups that drift or overflow most move to FP32 until the held-out error is within ``budget_px``."""
    return _greedy({g: "fp16" for g in groups}, ranking, lambda g: "fp32",
                   lambda plan: apply_fp16_plan(fp32_model, groups, plan), evaluate, budget_px, "--fp16-budget",
                   progress)


def apply_fp16_plan(fp32_model, groups: dict[str, list[str]], plan: dict[str, str]):
    """The FP32 graph with the groups planned ``fp16`` cast to float16 (the others stay float32)."""
    return cast_fp16(fp32_model, {n for g, p in plan.items() if p == "fp16" for n in groups[g]})


def _greedy(plan: dict, ranking: list[str], move: Callable[[str], str], build: Callable[[dict], object],
            evaluate: Callable[[object], dict], budget_px: float, option: str,
            progress) -> tuple[dict, list[dict], object]:
    model = build(plan)
    current = evaluate(model)
    steps = [{"moved": None, "to": None, **current}]
    progress(_step_line(steps[-1], budget_px))
    for group in ranking:
        if current["mean_px"] <= budget_px:
            break
        plan[group] = move(group)
        model = build(plan)
        current = evaluate(model)
        if plan[group] == "fp16" and not np.isfinite(current["rel_err"]):
            plan[group] = "fp32"  # float16 overflowed inside the group on the held-out crops
            model = build(plan)
            current = evaluate(model)
        steps.append({"moved": group, "to": plan[group], **current})
        progress(_step_line(steps[-1], budget_px))
    if not current["mean_px"] <= budget_px:
        raise HrnextError(f"{option} {budget_px} px cannot be met: with every group moved the held-out keypoints "
                          f"are {current['mean_px']:.3f} px from FP32; raise {option}")
    return plan, steps, model


def _step_line(step: dict, budget_px: float) -> str:
    what = "start" if step["moved"] is None else f"{step['moved']} -> {step['to']}"
    return (f"  plan: {what:<40} kpt {step['mean_px']:.3f} px (budget {budget_px} px), rel err "
            f"{step['rel_err']:.3e}, {step['within_2px']:.1%} within 2 px")
