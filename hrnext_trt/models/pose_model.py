"""The pose network every backend runs: a backbone and a 1x1 head that ends at heatmaps."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hrnext_trt.errors import HrnextError
from hrnext_trt.models import hrnet, hrnext
from hrnext_trt.models.dka import DynamicConv2d
from hrnext_trt.models.layers import CheckpointedSequential


class ArchEntry(NamedTuple):
    backbone: type[nn.Module]
    config: object  # the family's frozen config dataclass
    mmpose_key_rules: tuple[tuple[str, str], ...]  # original key -> ours (regex, replacement)


_REGISTRY: dict[str, ArchEntry] = {
    **{a: ArchEntry(hrnext.HRNeXt, c, hrnext.MMPOSE_KEY_RULES) for a, c in hrnext.VARIANTS.items()},
    **{a: ArchEntry(hrnet.HRNet, c, hrnet.MMPOSE_KEY_RULES) for a, c in hrnet.VARIANTS.items()},
}
ARCHS: tuple[str, ...] = tuple(_REGISTRY)

# The faster form in PyTorch eager (scripts/bench_dka.py); export always switches to "static".
DEFAULT_DKA_MODE = "grouped"


class PoseModel(nn.Module):
    """images (B, 3, H, W), ImageNet-normalised -> heatmaps (B, J, H/4, W/4). No decoding."""

    def __init__(self, arch: str, backbone: nn.Module, num_joints: int):
        super().__init__()
        self.arch = arch
        self.num_joints = num_joints
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.out_channels, num_joints, 1)
        # mmpose's heatmap head (the original code's) starts at normal(0, 0.001) and a zero bias:
        # untrained heatmaps near 0, as the targets mostly are (the demo preset: AP 0.555 vs 0.520
        # with PyTorch's default init, same machine).
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def set_dka_mode(self, mode: str) -> "PoseModel":
        """Switch every DKA layer to ``"grouped"`` or ``"static"`` (numerically equal forms)."""
        for m in self.modules():
            if isinstance(m, DynamicConv2d):
                m.mode = mode
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> "PoseModel":
        """Recompute block activations in backward (training only) to save memory."""
        for m in self.modules():
            if isinstance(m, CheckpointedSequential):
                m.grad_checkpointing = enable
        return self


def arch_entry(arch: str) -> ArchEntry:
    """The backbone class, config and checkpoint key rules of a registered arch."""
    if arch not in _REGISTRY:
        raise HrnextError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return _REGISTRY[arch]


def build_pose_model(arch: str, num_joints: int) -> PoseModel:
    """A freshly initialised model of a registered arch with a ``num_joints`` head."""
    entry = arch_entry(arch)
    if int(num_joints) < 1:
        raise HrnextError(f"num_joints must be a positive number, got {num_joints}")
    model = PoseModel(arch, entry.backbone(entry.config), int(num_joints))
    if entry.backbone is hrnet.HRNet:
        hrnet.init_like_mmpose(model)  # the baseline's recipe starts from mmpose's initialisation
    return model.set_dka_mode(DEFAULT_DKA_MODE)
