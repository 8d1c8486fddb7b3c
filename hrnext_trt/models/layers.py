"""Small layers shared by the HRNeXt and HRNet families."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of an NCHW tensor (applied channels-last, eps 1e-6)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CheckpointedSequential(nn.Sequential):
    """A sequence of blocks that can recompute its activations in the backward pass.

    Activation checkpointing (on in the paper's recipe) trades compute for memory; it only acts
    in training with gradients enabled, so eval, tracing and export see a plain Sequential.
    """

    grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_cp = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for block in self:
            if use_cp:
                x = checkpoint(block, x, use_reentrant=False,
                               context_fn=functools.partial(_recompute_keeps_norm_stats, block))
            else:
                x = block(x)
        return x


def _recompute_keeps_norm_stats(block: nn.Module):
    """checkpoint's (forward, recompute) contexts for ``block``. The recompute in backward runs the
    block's forward a second time, and a BatchNorm in train mode would update its running statistics
    again (momentum applied twice, ``num_batches_tracked`` doubled: eval-mode results would depend on
    whether checkpointing was on). The recompute puts them back as the forward left them."""

    @contextlib.contextmanager
    def keep():
        buffers = [b for m in block.modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm))
                   for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
        saved = [b.clone() for b in buffers]
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, value in zip(buffers, saved):
                    buffer.copy_(value)

    return contextlib.nullcontext(), keep()


def _linear_weights(n_in: int, size: int | None, scale: float | None, dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """(n_out, n_in): the weights 1-D linear interpolation (align_corners=False) gives each
    input, read off F.interpolate itself so that the source-index arithmetic is PyTorch's own."""
    eye = torch.eye(n_in, dtype=dtype, device=device)[None]
    return F.interpolate(eye, size=size, scale_factor=scale, mode="linear", align_corners=False)[0].T


class _BilinearDeterministicBackward(torch.autograd.Function):
    """F.interpolate(bilinear) forward; backward as two matrix products. Bilinear interpolation is
    separable, out = Ah @ x @ Aw^T per channel, so grad_x = Ah^T @ grad @ Aw: the same gradient
    (to rounding) without the atomic adds of CUDA's upsample_bilinear2d_backward, which has no
    deterministic kernel (PyTorch only warns under use_deterministic_algorithms(warn_only=True))."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: tuple[int, int] | None, scale: float | None) -> torch.Tensor:
        ctx.in_hw, ctx.size, ctx.scale = tuple(x.shape[-2:]), size, scale
        return F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (h, w), size = ctx.in_hw, ctx.size or (None, None)
        # 16-bit gradients accumulate in float32 as the native kernel's do; autocast is kept off,
        # since it would run the products in 16 bits.
        dtype = torch.promote_types(grad.dtype, torch.float32)
        ah = _linear_weights(h, size[0], ctx.scale, dtype, grad.device)
        aw = _linear_weights(w, size[1], ctx.scale, dtype, grad.device)
        with torch.autocast(grad.device.type, enabled=False):
            grad_x = ah.T @ grad.to(dtype) @ aw
        return grad_x.to(grad.dtype), None, None


def upsample_bilinear(x: torch.Tensor, size: tuple[int, int] | None = None,
                      scale: float | None = None) -> torch.Tensor:
    """``F.interpolate(x, size or scale, mode="bilinear", align_corners=False)``; under
    ``torch.use_deterministic_algorithms`` (training with runtime.deterministic) its gradient comes
    from :class:`_BilinearDeterministicBackward`, so runs repeat exactly on a GPU too."""
    if torch.are_deterministic_algorithms_enabled() and torch.is_grad_enabled() and x.requires_grad:
        return _BilinearDeterministicBackward.apply(x, None if size is None else tuple(size), scale)
    return F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=False)


class BilinearUpsample(nn.Module):
    """Upsampling by ``scale`` (HRNeXt's fusion): nn.Upsample(mode="bilinear") through
    :func:`upsample_bilinear`. It has no state: checkpoint keys are those of nn.Upsample."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}, mode=bilinear, align_corners=False"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_bilinear(x, scale=float(self.scale))


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
            act: type[nn.Module] | None = None) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BN (+ activation): keys ``.0`` conv, ``.1`` BN, as HRNet's."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(out_channels)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def transition(prev: tuple[int, ...], widths: tuple[int, ...], act: type[nn.Module]) -> nn.ModuleList:
    """Into a stage: a branch whose width changes gets 3x3 conv + BN + act, an unchanged one passes
    through, a new one comes from the previous lowest resolution through a strided 3x3."""
    layers = []
    for i, width in enumerate(widths):
        if i < len(prev):
            layers.append(conv_bn(prev[i], width, 3, act=act) if prev[i] != width else nn.Identity())
        else:
            layers.append(nn.Sequential(conv_bn(prev[-1], width, 3, stride=2, act=act)))
    return nn.ModuleList(layers)


def run_stages(net: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    """Stage-1 output through ``transitionN`` / ``stage{N+1}`` for N = 1..3; the highest resolution."""
    for s in (1, 2, 3):
        trans = getattr(net, f"transition{s}")
        xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(trans)]
        xs = getattr(net, f"stage{s + 1}")(xs)
    return xs[0]


class MultiResolutionModule(nn.Module):
    """HRNet's exchange unit: parallel branches, then output i = act(sum_j f_ij(x_j)), where f_ii is
    the identity, f_ij (j > i) an ``upsample(j, i)`` path and f_ij (j < i) a ``downsample(j, i)``
    path. ``n_outputs`` is 1 in a network's last module (only the highest resolution is used)."""

    def __init__(self, branches: list[nn.Module], n_outputs: int, upsample: Callable[[int, int], nn.Module],
                 downsample: Callable[[int, int], nn.Module], act: nn.Module):
        super().__init__()
        n = len(branches)
        self.branches = nn.ModuleList(branches)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(nn.Identity() if j == i else upsample(j, i) if j > i else downsample(j, i) for j in range(n))
            for i in range(n_outputs))
        self.act = act

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if z.shape[-2:] != y.shape[-2:]:  # sizes not divisible by 32: upsampling by 2^k overshoots
                    z = upsample_bilinear(z, size=y.shape[-2:])
                y = y + z
            out.append(self.act(y))
        return out
