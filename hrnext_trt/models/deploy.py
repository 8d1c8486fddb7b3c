"""The export form of a model: eval mode, static DKA, every BatchNorm folded into its convolution.

Folding is exact in eval mode (BN is then a per-channel affine map) and is what makes the graph
cheap: a BN after a DKA layer cannot be fused by any exporter or runtime, since the kernel is only
known per sample, but it folds into every kernel of the bank plus one constant offset.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hrnext_trt.models.dka import DynamicConv2d
from hrnext_trt.models.pose_model import PoseModel


@torch.no_grad()
def fold_bn(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (eval statistics); the caller drops ``bn``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    offset = bn.bias - bn.running_mean * scale
    if isinstance(conv, DynamicConv2d):
        # sum_k a_k (s * W_k) = s * sum_k a_k W_k; the offset is independent of the attention.
        conv.weight.mul_(scale[None, :, None, None, None])
        if conv.bias is not None:
            conv.bias.mul_(scale)
        conv.shift = offset if conv.shift is None else conv.shift * scale + offset
    elif isinstance(conv, nn.Conv2d):
        conv.weight.mul_(scale[:, None, None, None])
        bias = offset if conv.bias is None else conv.bias * scale + offset
        conv.bias = nn.Parameter(bias)
    else:
        raise TypeError(f"cannot fold BatchNorm into {type(conv).__name__}")


def _conv_bn_pairs(module: nn.Module):
    """(parent, conv name, bn name) for each BN that directly follows a convolution."""
    for parent in module.modules():
        for conv_name, bn_name in getattr(parent, "conv_bn_pairs", ()):
            yield parent, conv_name, bn_name
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for a, b in zip(names, names[1:]):
                if isinstance(parent._modules[a], (nn.Conv2d, DynamicConv2d)) and \
                        isinstance(parent._modules[b], nn.BatchNorm2d):
                    yield parent, a, b


def prepare_for_export(model: PoseModel) -> nn.Module:
    """A copy of ``model`` for ``torch.onnx.export``: eval mode, the static DKA form (the only one
    with a batch-free graph) and no BatchNorm left. The caller's model is left as it was."""
    model = copy.deepcopy(model).eval().set_dka_mode("static")
    for parent, conv_name, bn_name in list(_conv_bn_pairs(model)):
        fold_bn(getattr(parent, conv_name), getattr(parent, bn_name))
        setattr(parent, bn_name, nn.Identity())
    return model
