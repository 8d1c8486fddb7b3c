"""Dynamic kernel aggregation (DKA): a convolution whose kernel is mixed per sample.

``y[b] = conv(x[b], sum_k a[b, k] * W[k])`` with ``a = sigmoid(attention(x))``. Two forms compute it
from the same parameters:

- ``"grouped"``: the original code's form, one convolution over the whole batch with
  ``groups * B`` groups and per-sample mixed kernels. Fast in PyTorch eager, but its kernel shape
  depends on the batch, so it cannot be exported.
- ``"static"``: convolution is linear in its kernel, so ``y[b] = sum_k a[b, k] * conv(x[b], W[k])``:
  one static convolution with ``K * Cout`` output channels (laid out ``(Cout, K)`` so grouping
  stays right), then an attention-weighted sum over K. A 1x1 convolution with ``groups == 1``
  instead mixes its weights per sample and runs one batched matmul (cheaper, same result).
  Exportable with a dynamic batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DKA_MODES = ("grouped", "static")


def _static_hw(x: torch.Tensor) -> tuple[int, int]:
    """H and W as plain ints: an exported graph then reshapes with constants, and only the batch
    axis stays dynamic (no Shape -> Gather -> Concat chains for every reshape)."""
    return int(x.shape[-2]), int(x.shape[-1])


class KernelAttention(nn.Module):
    """Global average pool -> 1x1 (C -> C//4) -> BN -> GELU -> 1x1 (-> K, bias) -> sigmoid: (B, K)."""

    conv_bn_pairs = (("conv1", "norm"),)  # folded for export (models/deploy.py)

    def __init__(self, in_channels: int, num_kernels: int):
        super().__init__()
        hidden = in_channels // 4
        self.conv1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.norm = nn.BatchNorm2d(hidden)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(hidden, num_kernels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # adaptive_avg_pool2d exports as GlobalAveragePool, which ONNX Runtime runs in its blocked
        # layout: measured faster than the ReduceMean that x.mean(dim=(2, 3)) exports as.
        a = F.adaptive_avg_pool2d(x, 1)
        a = self.conv2(self.act(self.norm(self.conv1(a))))
        return torch.sigmoid(a).flatten(1)


class DynamicConv2d(nn.Module):
    """A K-kernel DKA convolution; ``mode`` picks the (numerically equal) implementation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, num_kernels: int = 4,
                 bias: bool = False, mode: str = "grouped"):
        super().__init__()
        if num_kernels < 2:
            raise ValueError("DynamicConv2d needs num_kernels >= 2; use nn.Conv2d for K == 1")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups, self.num_kernels = dilation, groups, num_kernels
        self.attention = KernelAttention(in_channels, num_kernels)
        # The original layout (K, Cout, Cin/groups, kh, kw): checkpoints load without reshaping.
        self.weight = nn.Parameter(torch.empty(num_kernels, out_channels, in_channels // groups,
                                               kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_kernels, out_channels)) if bias else None
        # A constant per-channel offset, set only when a following BN is folded in for export.
        self.register_buffer("shift", None)
        self.mode = mode
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for k in range(self.num_kernels):
            nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, num_kernels={self.num_kernels}, mode={self.mode}")

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in DKA_MODES:
            raise ValueError(f"unknown DKA mode {mode!r}; choose one of {DKA_MODES}")
        self._mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        if self._mode == "grouped":
            return self._forward_grouped(x, a)
        if self.kernel_size == 1 and self.groups == 1 and self.stride == 1 and self.padding == 0:
            return self._forward_matmul(x, a)
        return self._forward_static(x, a)

    def _mixed_bias(self, a: torch.Tensor) -> torch.Tensor | None:
        return None if self.bias is None else a @ self.bias  # (B, Cout)

    def _add_bias(self, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        bias = self._mixed_bias(a)
        if bias is not None:
            y = y + bias[:, :, None, None]
        return y if self.shift is None else y + self.shift[:, None, None]

    def _forward_grouped(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weight = (a @ self.weight.flatten(1)).reshape(b * self.out_channels, *self.weight.shape[2:])
        bias = self._mixed_bias(a)
        y = F.conv2d(x.reshape(1, b * c, h, w), weight, None if bias is None else bias.flatten(),
                     self.stride, self.padding, self.dilation, self.groups * b)
        y = y.reshape(b, self.out_channels, y.shape[-2], y.shape[-1])
        return y if self.shift is None else y + self.shift[:, None, None]

    def _forward_static(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        k, cout = self.num_kernels, self.out_channels
        # (K, Cout, ...) -> (Cout, K, ...): each group's output channels stay contiguous.
        weight = self.weight.transpose(0, 1).reshape(cout * k, *self.weight.shape[2:])
        y = F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups)
        h, w = _static_hw(y)
        # The weighted sum over K as one batched matmul (B, 1, 1, K) @ (B, Cout, K, HW): measured
        # faster than multiply + reduce in ONNX Runtime and eager, with no (B, Cout, K, H, W) temporary.
        y = torch.matmul(a[:, None, None, :], y.reshape(-1, cout, k, h * w)).reshape(-1, cout, h, w)
        return self._add_bias(y, a)

    def _forward_matmul(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h, w = _static_hw(x)
        weight = (a @ self.weight.flatten(1)).reshape(-1, self.out_channels, self.in_channels)
        y = torch.matmul(weight, x.reshape(-1, self.in_channels, h * w)).reshape(-1, self.out_channels, h, w)
        return self._add_bias(y, a)


def dynamic_conv(in_channels: int, out_channels: int, kernel_size: int, num_kernels: int,
                 padding: int = 0, groups: int = 1) -> nn.Module:
    """A DKA convolution, or a plain bias-free Conv2d when K == 1 (as the original code builds)."""
    if num_kernels == 1:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, groups=groups, bias=False)
    return DynamicConv2d(in_channels, out_channels, kernel_size, padding=padding, groups=groups,
                         num_kernels=num_kernels)
