"""Parameter and MAC counts against the published figures; the per-stage table adds up."""

import pytest
import torch

from hrnext_trt.models import build_pose_model
from hrnext_trt.models.complexity import arch_summary, model_complexity


@pytest.mark.parametrize("arch, millions", [("hrnet_w32", 28.5), ("hrnet_w48", 63.6)])
def test_hrnet_parameter_counts_with_a_17_joint_head(arch, millions):
    with torch.device("meta"):
        params = sum(p.numel() for p in build_pose_model(arch, 17).parameters())
    assert abs(params / 1e6 - millions) / millions < 5e-3


@pytest.mark.parametrize("arch, joints, size, gmacs, mparams", [
    ("hrnext_s", 14, (256, 192), 2.57, 9.48),    # the published CrowdPose small model
    ("hrnext_b", 17, (384, 288), 11.17, 31.73),  # the published COCO base model
])
def test_hrnext_macs_match_the_paper(arch, joints, size, gmacs, mparams):
    summary = arch_summary(arch, joints, size)
    assert round(summary["macs"] / 1e9, 2) == gmacs  # measured on the original code (was 11.16 for hrnext_b)
    assert abs(summary["params"] / 1e6 - mparams) / mparams < 1e-3
    assert [s["name"] for s in summary["stages"]] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert sum(s["params"] for s in summary["stages"]) == summary["params"]
    assert sum(s["macs"] for s in summary["stages"]) == summary["macs"]


def test_dka_counts_as_one_per_sample_convolution_in_either_form():
    """A real model in either DKA form counts what a shapes-only (meta) model counts, and the
    static form's K-fold convolution is not counted K times (the kernel mixing is, once per image)."""
    model = build_pose_model("hrnext_tiny", 14)
    grouped = model_complexity(model.set_dka_mode("grouped"), (64, 64))
    static = model_complexity(model.set_dka_mode("static"), (64, 64))
    with torch.device("meta"):
        meta = model_complexity(build_pose_model("hrnext_tiny", 14), (64, 64))
    assert grouped == static == meta
    assert model.training  # counting left the mode alone
    # stage 1's only block, by hand: DLP dw3x3 and DFFN 1x1 / dw3x3 / 1x1 (as per-sample convs),
    # GFFN's 1x1, dw5x5, dw7x7, 1x1, 1x1, and the attention branches on pooled features.
    hw, c, h = 16 * 16, 16, 64
    block = hw * (c * 9 + c * h + h * 9 + h * c + c * c + c * 25 + c * 49 + c * c + c * c)
    attention = (c * 4 + 4 * 4) + (c * 4 + 4 * 4) + (h * 16 + 16 * 4) + (h * 16 + 16 * 4)
    mixing = 4 * (c * 9 + c * h + h * 9 + h * c)  # each image's kernels: K = 4 weighted kernels summed, once
    assert next(s for s in grouped["stages"] if s["name"] == "stage1")["macs"] == block + attention + mixing
