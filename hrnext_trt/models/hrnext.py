"""HRNeXt (IEEE TMM, "HRNeXt: High-Resolution Context Network for Crowd Pose Estimation").

Layout follows ``shared/spec/HRNEXT.md``: blocks, branches and modules, the backbone, the
mmpose-0.x key remapping, one builder, then one entry per variant. The skeleton keeps HRNet's
module names (``conv1``..``bn4``, ``layer1``, ``transitionN``, ``stageN.M.branches`` /
``fuse_layers``), shared with :mod:`hrnext_trt.models.hrnet`; inside a block the names follow the
spec (``dlp``, ``gffn.gsa``, ``dffn``) and :data:`MMPOSE_KEY_RULES` maps the original ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hrnext_trt.models.dka import dynamic_conv
from hrnext_trt.models.layers import (BilinearUpsample, CheckpointedSequential, DropPath, LayerNorm2d,
                                      MultiResolutionModule, run_stages, transition)


class DLP(nn.Module):
    """Dynamic local perception: GELU(BN(DKA dw3x3))."""

    conv_bn_pairs = (("conv", "norm"),)  # folded for export (models/deploy.py)

    def __init__(self, dim: int, num_kernels: int):
        super().__init__()
        self.conv = dynamic_conv(dim, dim, 3, num_kernels, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class GSA(nn.Module):
    """Global spatial attention: t * BN(1x1(BN(dw7x7 d3(BN(dw5x5(t))))))."""

    conv_bn_pairs = (("dw", "norm1"), ("dwd", "norm2"), ("pw", "norm3"))

    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, bias=False)
        self.norm1 = nn.BatchNorm2d(dim)
        self.dwd = nn.Conv2d(dim, dim, 7, padding=9, dilation=3, groups=dim, bias=False)
        self.norm2 = nn.BatchNorm2d(dim)
        self.pw = nn.Conv2d(dim, dim, 1, bias=False)
        self.norm3 = nn.BatchNorm2d(dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = self.norm1(self.dw(t))
        a = self.norm2(self.dwd(a))
        return t * self.norm3(self.pw(a))


class GFFN(nn.Module):
    """Global FFN: BN(1x1(GSA(GELU(BN(1x1 x))))) + x."""

    conv_bn_pairs = (("proj1", "norm1"), ("proj2", "norm2"))

    def __init__(self, dim: int):
        super().__init__()
        self.proj1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        self.gsa = GSA(dim)
        self.proj2 = nn.Conv2d(dim, dim, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.gsa(self.act(self.norm1(self.proj1(x))))
        return self.norm2(self.proj2(t)) + x


class DFFN(nn.Module):
    """Dynamic FFN: BN(DKA 1x1 C->hC) -> BN(DKA dw3x3) -> GELU -> BN(DKA 1x1 hC->C)."""

    conv_bn_pairs = (("fc1", "norm1"), ("dw", "norm2"), ("fc2", "norm3"))

    def __init__(self, dim: int, hidden: int, num_kernels: int):
        super().__init__()
        self.fc1 = dynamic_conv(dim, hidden, 1, num_kernels)
        self.norm1 = nn.BatchNorm2d(hidden)
        self.dw = dynamic_conv(hidden, hidden, 3, num_kernels, padding=1, groups=hidden)
        self.norm2 = nn.BatchNorm2d(hidden)
        self.act = nn.GELU()
        self.fc2 = dynamic_conv(hidden, dim, 1, num_kernels)
        self.norm3 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.fc1(x))
        x = self.act(self.norm2(self.dw(x)))
        return self.norm3(self.fc2(x))


class HRNeXtBlock(nn.Module):
    """x += s1 * DLP(x); x += s2 * GFFN(BN(x)); x += s3 * DFFN(BN(x)), each with drop path."""

    def __init__(self, dim: int, num_kernels: int, mlp_ratio: int, drop_path: float):
        super().__init__()
        self.dlp = DLP(dim, num_kernels)
        self.norm_gffn = nn.BatchNorm2d(dim)
        self.gffn = GFFN(dim)
        self.norm_dffn = nn.BatchNorm2d(dim)
        self.dffn = DFFN(dim, dim * mlp_ratio, num_kernels)
        self.scale_dlp = nn.Parameter(torch.full((dim,), 0.01))
        self.scale_gffn = nn.Parameter(torch.full((dim,), 0.01))
        self.scale_dffn = nn.Parameter(torch.full((dim,), 0.01))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.scale_dlp[:, None, None] * self.dlp(x))
        x = x + self.drop_path(self.scale_gffn[:, None, None] * self.gffn(self.norm_gffn(x)))
        return x + self.drop_path(self.scale_dffn[:, None, None] * self.dffn(self.norm_dffn(x)))


class Branch(nn.Module):
    """One resolution's blocks followed by a channel LayerNorm."""

    def __init__(self, dim: int, num_kernels: int, mlp_ratio: int, drop_paths: list[float]):
        super().__init__()
        self.blocks = CheckpointedSequential(*[HRNeXtBlock(dim, num_kernels, mlp_ratio, p) for p in drop_paths])
        self.norm = LayerNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))


def _downsample_steps(c_in: int, c_out: int, steps: int) -> nn.Sequential:
    """``steps`` x [dw3x3 s2, BN, 1x1, BN]; intermediate steps keep c_in and end with GELU."""
    layers = []
    for s in range(steps):
        last = s == steps - 1
        step = [nn.Conv2d(c_in, c_in, 3, 2, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
                nn.Conv2d(c_in, c_out if last else c_in, 1, bias=False), nn.BatchNorm2d(c_out if last else c_in)]
        layers.append(nn.Sequential(*step) if last else nn.Sequential(*step, nn.GELU()))
    return nn.Sequential(*layers)


class HRNeXtModule(MultiResolutionModule):
    """Parallel branches, then fusion: j > i by 1x1 + BN + bilinear upsampling, j < i by
    [dw3x3 s2, BN, 1x1, BN] steps; GELU after the sum."""

    def __init__(self, widths: tuple[int, ...], kernels: tuple[int, ...], mlp_ratio: int,
                 drop_paths: list[list[float]], all_outputs: bool):
        def upsample(j: int, i: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(widths[j], widths[i], 1, bias=False), nn.BatchNorm2d(widths[i]),
                                 BilinearUpsample(2 ** (j - i)))

        branches = [Branch(widths[i], kernels[i], mlp_ratio, drop_paths[i]) for i in range(len(widths))]
        super().__init__(branches, len(widths) if all_outputs else 1, upsample,
                         lambda j, i: _downsample_steps(widths[j], widths[i], i - j), nn.GELU())


@dataclass(frozen=True)
class HRNeXtConfig:
    """One HRNeXt size. Branch i has ``widths[i]`` channels and ``kernels[i]`` DKA kernels
    (stage 1 uses ``kernels[0]``) in every stage it appears in."""

    stem_width: int
    widths: tuple[int, int, int, int]
    kernels: tuple[int, int, int, int]
    stage_modules: tuple[int, int, int] = (2, 4, 2)  # stages 2, 3, 4
    stage1_blocks: int = 2
    branch_blocks: int = 2
    mlp_ratio: int = 4
    drop_path_rate: float = 0.1


class HRNeXt(nn.Module):
    """The HRNeXt backbone: images -> the highest-resolution features (1/4 of the input)."""

    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("conv4", "bn4"))

    def __init__(self, cfg: HRNeXtConfig):
        super().__init__()
        c1, act = cfg.stem_width, nn.GELU
        self.conv1 = nn.Conv2d(3, c1, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c1, 3, 1, 1, groups=c1, bias=False)
        self.bn2 = nn.BatchNorm2d(c1)
        self.conv3 = nn.Conv2d(c1, c1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c1)
        self.conv4 = nn.Conv2d(c1, c1, 3, 2, 1, groups=c1, bias=False)
        self.bn4 = nn.BatchNorm2d(c1)
        self.act = act()

        # Stochastic depth rises linearly over every block, in build order.
        n_blocks = cfg.stage1_blocks + sum(m * (s + 2) * cfg.branch_blocks for s, m in enumerate(cfg.stage_modules))
        rates = iter([cfg.drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)])
        self.layer1 = Branch(c1, cfg.kernels[0], cfg.mlp_ratio, [next(rates) for _ in range(cfg.stage1_blocks)])

        prev = (c1,)
        for s, n_modules in enumerate(cfg.stage_modules):
            n = s + 2
            widths, kernels = cfg.widths[:n], cfg.kernels[:n]
            modules = []
            for m in range(n_modules):
                drops = [[next(rates) for _ in range(cfg.branch_blocks)] for _ in range(n)]
                last = n == 4 and m == n_modules - 1
                modules.append(HRNeXtModule(widths, kernels, cfg.mlp_ratio, drops, all_outputs=not last))
            setattr(self, f"transition{s + 1}", transition(prev, widths, act))
            setattr(self, f"stage{s + 2}", nn.Sequential(*modules))
            prev = widths
        self.out_channels = cfg.widths[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        x = self.act(self.bn3(self.conv3(x)))
        x = self.act(self.bn4(self.conv4(x)))
        return run_stages(self, [self.layer1(x)])


# Original (mmpose 0.x) key -> this module's key, applied in order to every key (regex, replacement).
MMPOSE_KEY_RULES: tuple[tuple[str, str], ...] = (
    # stage 1 and each branch: Sequential(block..., LN wrapper) -> blocks + norm
    (r"(layer1|branches\.\d+)\.\d+\.norm\.(weight|bias)$", r"\1.norm.\2"),
    (r"(layer1|branches\.\d+)\.(\d+)\.(?!norm\.)", r"\1.blocks.\2."),
    (r"\.layer_scale_1$", ".scale_dlp"),
    (r"\.layer_scale_2$", ".scale_gffn"),
    (r"\.layer_scale_3$", ".scale_dffn"),
    (r"(blocks\.\d+)\.norm1\.", r"\1.norm_gffn."),
    (r"(blocks\.\d+)\.norm2\.", r"\1.norm_dffn."),
    (r"\.mlp1\.spatial_gate\.", ".gffn.gsa."),
    (r"\.mlp1\.", ".gffn."),
    (r"\.mlp2\.proj1\.conv\.", ".dffn.fc1."),
    (r"\.mlp2\.dw\.conv\.", ".dffn.dw."),
    (r"\.mlp2\.proj2\.conv\.", ".dffn.fc2."),
    (r"\.mlp2\.", ".dffn."),
    (r"\.dlp\.dw3x3\.conv\.", ".dlp.conv."),
    (r"\.aggregation\.weight$", ".weight"),
)


VARIANTS: dict[str, HRNeXtConfig] = {
    # The fixture's narrow configuration (shared/fixtures/hrnext_tiny_crowdpose.json), for fast tests.
    "hrnext_tiny": HRNeXtConfig(stem_width=16, widths=(8, 16, 32, 64), kernels=(4, 2, 1, 1),
                                stage_modules=(1, 2, 2), stage1_blocks=1, branch_blocks=1),
    "hrnext_s": HRNeXtConfig(stem_width=64, widths=(32, 64, 128, 256), kernels=(4, 2, 1, 1)),
    "hrnext_b": HRNeXtConfig(stem_width=64, widths=(48, 96, 192, 384), kernels=(8, 4, 2, 1)),
}
