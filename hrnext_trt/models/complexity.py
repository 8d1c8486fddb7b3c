"""Parameters and multiply-accumulates of a model, in total and per stage.

MACs are counted from one forward pass with hooks on every convolution and linear layer: output
elements x (input channels / groups) x kernel area. A DKA layer counts as the original code runs it:
the per-sample mixing of its K kernels (K x the kernel's size), the one per-sample convolution (not
K of them as the static form computes), and its small attention branch. With the mixing the totals
are the spec's figures measured on the original code (2.57 G, 11.17 G; without it 11.16 G).
Normalisation, activations and resizing are not counted.
"""

from __future__ import annotations

import torch
from torch import nn

from hrnext_trt.models.dka import DynamicConv2d
from hrnext_trt.models.pose_model import build_pose_model

# Reporting order; the stem is everything of the backbone before stage 1.
STAGES = ("stem", "stage1", "stage2", "stage3", "stage4", "head")


def stage_of(name: str) -> str:
    """Which reporting stage a module or parameter of a PoseModel belongs to."""
    parts = name.split(".")
    if parts[0] == "head":
        return "head"
    part = parts[1] if len(parts) > 1 else ""
    if part == "layer1":
        return "stage1"
    if part.startswith("transition"):  # transition N leads into stage N + 1
        return f"stage{int(part[len('transition'):]) + 1}"
    if part.startswith("stage"):
        return part
    return "stem"


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, DynamicConv2d):
        per_output = module.weight.shape[2] * module.weight.shape[3] * module.weight.shape[4]
        mixing = module.weight.numel()  # each image's kernel: its K kernels weighted and summed
        return output.numel() // output.shape[0] * per_output + mixing
    elif isinstance(module, nn.Conv2d):
        per_output = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
    else:  # nn.Linear
        per_output = module.in_features
    return output.numel() // output.shape[0] * per_output


def model_complexity(model: nn.Module, input_size: tuple[int, int] = (256, 192)) -> dict:
    """``{"params", "macs", "stages": [{"name", "params", "macs"}]}`` for one image of ``input_size``."""
    params = dict.fromkeys(STAGES, 0)
    for name, p in model.named_parameters():
        params[stage_of(name)] += p.numel()
    macs = dict.fromkeys(STAGES, 0)
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, DynamicConv2d)):
            def hook(mod, _inputs, output, stage=stage_of(name)):
                macs[stage] += _macs(mod, output)
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            # On the model's own device: a model built on "meta" is counted without any arithmetic.
            device = next(model.parameters()).device
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    stages = [{"name": s, "params": params[s], "macs": macs[s]} for s in STAGES if params[s] or macs[s]]
    return {"params": sum(params.values()), "macs": sum(macs.values()), "stages": stages}


def arch_summary(arch: str, num_joints: int = 17, input_size: tuple[int, int] = (256, 192)) -> dict:
    """:func:`model_complexity` of a freshly built arch, with the arch, joints and input size."""
    with torch.device("meta"):  # shapes only: instant, even for the largest arch
        model = build_pose_model(arch, num_joints)
    return {"arch": arch, "num_joints": num_joints, "input_size": list(input_size),
            **model_complexity(model, input_size)}


def format_summary(summary: dict) -> str:
    """The per-stage table of :func:`arch_summary`, in millions of parameters and GMACs."""
    height, width = summary["input_size"]
    lines = [f"{summary['arch']}, {summary['num_joints']} joints, input {height}x{width}",
             f"{'stage':<8} {'params (M)':>11} {'MACs (G)':>10}"]
    for row in (*summary["stages"], {"name": "total", **summary}):
        lines.append(f"{row['name']:<8} {row['params'] / 1e6:11.3f} {row['macs'] / 1e9:10.3f}")
    return "\n".join(lines)
