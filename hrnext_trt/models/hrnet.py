"""HRNet (Sun et al., CVPR 2019), the top-down baseline the HRNeXt paper compares against.

Module names are mmpose's (``conv1``, ``layer1``, ``transitionN``, ``stageN.M.branches`` /
``fuse_layers``), so mmpose HRNet checkpoints load with only the head renamed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hrnext_trt.models.layers import CheckpointedSequential, MultiResolutionModule, conv_bn, run_stages, transition


class BasicBlock(nn.Module):
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))  # folded for export (models/deploy.py)

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)


class Bottleneck(nn.Module):
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))
    expansion = 4

    def __init__(self, in_channels: int, planes: int):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = conv_bn(in_channels, out, 1) if in_channels != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class HRModule(MultiResolutionModule):
    """Parallel branches of basic blocks, then fusion: j > i by 1x1 + BN + nearest upsampling,
    j < i by strided 3x3 + BN steps (the intermediate ones keep c_j and end with ReLU); ReLU."""

    def __init__(self, widths: tuple[int, ...], blocks: int, all_outputs: bool):
        def upsample(j: int, i: int) -> nn.Module:
            return nn.Sequential(*conv_bn(widths[j], widths[i], 1), nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))

        def downsample(j: int, i: int) -> nn.Module:
            steps = [conv_bn(widths[j], widths[j], 3, 2, act=nn.ReLU) for _ in range(i - j - 1)]
            return nn.Sequential(*steps, conv_bn(widths[j], widths[i], 3, 2))

        branches = [CheckpointedSequential(*[BasicBlock(w) for _ in range(blocks)]) for w in widths]
        super().__init__(branches, len(widths) if all_outputs else 1, upsample, downsample, nn.ReLU())


@dataclass(frozen=True)
class HRNetConfig:
    """One HRNet width: branch widths w, 2w, 4w, 8w; 4 blocks per branch; 1/4/3 modules."""

    width: int
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    blocks: int = 4


class HRNet(nn.Module):
    """The HRNet backbone: images -> the highest-resolution features (1/4 of the input)."""

    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, cfg: HRNetConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = CheckpointedSequential(*[Bottleneck(64 if b == 0 else 256, 64) for b in range(4)])

        prev = (256,)
        for s, n_modules in enumerate(cfg.stage_modules):
            n = s + 2
            widths = tuple(cfg.width * 2 ** i for i in range(n))
            modules = [HRModule(widths, cfg.blocks, all_outputs=not (n == 4 and m == n_modules - 1))
                       for m in range(n_modules)]
            setattr(self, f"transition{s + 1}", transition(prev, widths, nn.ReLU))
            setattr(self, f"stage{s + 2}", nn.Sequential(*modules))
            prev = widths
        self.out_channels = cfg.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return run_stages(self, [self.layer1(x)])


def init_like_mmpose(model: nn.Module) -> None:
    """mmpose 0.x's initialisation of a top-down HRNet backbone from scratch (its ``init_weights``
    without pretrained weights; the head is ``PoseModel``'s, initialised the same way): every
    convolution normal(0, 0.001) with a zero bias, BatchNorm weight 1 and bias 0. PyTorch's default
    left the untrained network's heatmaps around 4 (loss ~5 where mmpose starts near 0.002)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# mmpose HRNet keys are this module's keys; only the head is renamed (by the shared head rule).
MMPOSE_KEY_RULES: tuple[tuple[str, str], ...] = ()

VARIANTS: dict[str, HRNetConfig] = {
    "hrnet_w32": HRNetConfig(width=32),
    "hrnet_w48": HRNetConfig(width=48),
}
