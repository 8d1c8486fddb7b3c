"""The network's own parts, read from the ONNX node names the export preserves.

The TorchScript exporter names every node by its module scope
(``/backbone/stage3/stage3.1/branches.2/blocks/blocks.0/dffn/fc1/attention/conv1/Conv``) and
onnxslim keeps the names, so each node maps to a place in the network:

| part | key |
|---|---|
| stem (the convolutions before stage 1) | ``stem`` |
| stage 1's blocks, its final norm | ``stage1.b0.blk<j>``, ``stage1.b0.norm`` |
| the transition into stage s | ``stage<s>.transition`` |
| block j of branch b in module m of stage s | ``stage<s>.m<m>.b<b>.blk<j>`` |
| a branch's final norm | ``stage<s>.m<m>.b<b>.norm`` |
| the fusion layers of module m (resampling convs, sums) | ``stage<s>.m<m>.fuse`` |
| the final 1x1 convolution | ``head`` |

Inside a block a node is ``attention`` (the DKA attention branch: pool, 1x1 convs, sigmoid),
``kernels`` (a DKA layer's kernel bank and its attention-weighted sum) or ``convs`` (every other
layer of the block). A grouping level cuts these keys: ``stage`` (stem, stage1..4, head),
``branch`` (transitions, branches and fusions apart), ``block`` and ``part`` (attention / kernels /
convs of each block apart).
"""

from __future__ import annotations

import re

from hrnext_trt.errors import HrnextError

LEVELS = ("stage", "branch", "block", "part")
_DEPTH = {"stage": 1, "branch": 2, "block": 3, "part": 4}
_BLOCK = re.compile(r"^blocks\.(\d+)$")


def module_path(node_name: str) -> list[str]:
    """``/backbone/conv1/Conv`` -> ``["backbone", "conv1"]``: the scope, without the op's own name."""
    return [p for p in node_name.split("/") if p][:-1]


def dka_modules(node_names) -> set[str]:
    """Scopes of DKA layers: those with an ``attention`` sub-module (``.../dlp/conv``)."""
    found = set()
    for name in node_names:
        path = module_path(name)
        if "attention" in path:
            found.add("/".join(path[:path.index("attention")]))
    return found


def structure_key(node_name: str, dka: set[str]) -> tuple[str, ...]:
    """Where ``node_name`` sits in the network (see the module docstring), finest first-level last."""
    path = module_path(node_name)
    if not path or path[0] != "backbone":
        return ("head",) if path and path[0] == "head" else ("other",)
    if len(path) < 2:
        return ("stem",)
    part = path[1]
    if part == "layer1":
        return ("stage1", "b0", *_branch_rest(path, 2, dka))
    match = re.fullmatch(r"transition(\d+)(\..*)?", part)
    if match:
        return (f"stage{int(match.group(1)) + 1}", "transition")
    match = re.fullmatch(r"stage(\d+)", part)
    if match:
        stage = f"stage{match.group(1)}"
        module = path[2].rsplit(".", 1)[-1] if len(path) > 2 else "0"
        if len(path) > 3 and path[3].startswith("branches."):
            return (stage, f"m{module}.b{path[3].split('.')[1]}", *_branch_rest(path, 4, dka))
        return (stage, f"m{module}.fuse")
    return ("stem",)


def _branch_rest(path: list[str], start: int, dka: set[str]) -> tuple[str, ...]:
    """The block and part of a node inside a branch (``path[start:]`` is below the branch)."""
    for i in range(start, len(path)):
        match = _BLOCK.match(path[i])
        if match:
            if "attention" in path[i + 1:]:
                kind = "attention"
            elif any("/".join(path[:j]) in dka for j in range(i + 2, len(path) + 1)):
                kind = "kernels"
            else:
                kind = "convs"
            return (f"blk{match.group(1)}", kind)
    return ("norm",)


def group_nodes(node_names, level: str, all_names=None) -> dict[str, list[str]]:
    """``{group name: [node names]}`` of ``node_names`` cut at ``level``, in graph order.

    ``all_names`` (default ``node_names``): every node name of the graph, to find the DKA layers.
    """
    if level not in LEVELS:
        raise HrnextError(f"grouping level {level!r} is unknown: choose one of {', '.join(LEVELS)}")
    node_names = list(node_names)
    dka = dka_modules(all_names if all_names is not None else node_names)
    groups: dict[str, list[str]] = {}
    for name in node_names:
        key = structure_key(name, dka)[:_DEPTH[level]]
        groups.setdefault(".".join(key), []).append(name)
    return groups
