"""DKA: both implementations equal the per-sample definition, in eval and in training mode."""

import pytest
import torch
import torch.nn.functional as F

from hrnext_trt.models.dka import DynamicConv2d


def naive_dka(layer: DynamicConv2d, x: torch.Tensor, training: bool) -> torch.Tensor:
    """The definition, one sample at a time: a = sigmoid(attention), kernel = sum_k a_k W_k."""
    att = layer.attention
    h = F.conv2d(x.mean(dim=(2, 3), keepdim=True), att.conv1.weight)
    if training:  # batch statistics of the pooled features
        mean, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    else:
        mean, var = att.norm.running_mean[None, :, None, None], att.norm.running_var[None, :, None, None]
    h = (h - mean) / torch.sqrt(var + att.norm.eps) * att.norm.weight[None, :, None, None] + att.norm.bias[None, :, None, None]
    a = torch.sigmoid(F.conv2d(F.gelu(h), att.conv2.weight, att.conv2.bias)).flatten(1)
    out = []
    for b in range(x.shape[0]):
        kernel = sum(a[b, k] * layer.weight[k] for k in range(layer.num_kernels))
        bias = None if layer.bias is None else sum(a[b, k] * layer.bias[k] for k in range(layer.num_kernels))
        out.append(F.conv2d(x[b:b + 1], kernel, bias, layer.stride, layer.padding, layer.dilation, layer.groups))
    return torch.cat(out)


CASES = [  # (cin, cout, kernel, padding, dilation, groups, K, bias)
    (8, 8, 3, 1, 1, 8, 4, False),     # DLP / DFFN depthwise 3x3
    (8, 32, 1, 0, 1, 1, 4, False),    # DFFN 1x1 expand (matmul path of the static form)
    (32, 8, 1, 0, 1, 1, 2, True),     # DFFN 1x1 reduce, with a bias bank
    (8, 12, 3, 2, 2, 4, 3, True),     # grouped, dilated, padded: the general static path
]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-k{c[2]}-g{c[5]}-K{c[6]}")
def test_both_forms_equal_the_naive_definition(case, training):
    cin, cout, k, pad, dil, groups, kernels, bias = case
    torch.manual_seed(0)
    layer = DynamicConv2d(cin, cout, k, padding=pad, dilation=dil, groups=groups, num_kernels=kernels, bias=bias)
    with torch.no_grad():  # random everything, so no parameter sits at a value that hides a bug
        for p in layer.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        layer.attention.norm.running_mean.normal_()
        layer.attention.norm.running_var.uniform_(0.5, 2.0)
    layer.train(training)
    x = torch.randn(3, cin, 9, 7)
    with torch.no_grad():
        expected = naive_dka(layer, x, training)
    for mode in ("grouped", "static"):
        layer.mode = mode
        with torch.no_grad():
            got = layer(x)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=f"{mode} form differs")


def test_both_forms_give_the_same_gradients():
    torch.manual_seed(1)
    layer = DynamicConv2d(6, 6, 3, padding=1, groups=6, num_kernels=4).train()
    x = torch.randn(2, 6, 8, 8)
    grads = {}
    for mode in ("grouped", "static"):
        layer.mode = mode
        layer.zero_grad()
        layer(x).square().sum().backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in layer.parameters()])
    torch.testing.assert_close(grads["grouped"], grads["static"], atol=1e-5, rtol=1e-4)


def test_unknown_mode_is_refused():
    layer = DynamicConv2d(4, 4, 1, num_kernels=2)
    with pytest.raises(ValueError, match="unknown DKA mode"):
        layer.mode = "fast"
