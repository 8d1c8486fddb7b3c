"""HRNeXt matches the original code: checkpoint layouts, the fixture's heatmaps, parameter counts."""

import json

import numpy as np
import pytest
import torch

from hrnext_trt.models import build_pose_model, load_pose_model, remap_mmpose_state_dict
from hrnext_trt.models.layers import CheckpointedSequential, upsample_bilinear


@pytest.fixture(scope="module")
def tiny_model(fixtures_dir):
    return load_pose_model(fixtures_dir / "hrnext_tiny_crowdpose.pth", arch="hrnext_tiny", num_joints=14)


@pytest.mark.parametrize("mode", ["grouped", "static"])
def test_fixture_checkpoint_reproduces_the_original_heatmaps(tiny_model, fixtures_dir, mode):
    io = np.load(fixtures_dir / "hrnext_tiny_crowdpose_io.npz")
    with torch.no_grad():
        heatmaps = tiny_model.set_dka_mode(mode)(torch.from_numpy(io["input"])).numpy()
    assert heatmaps.shape == io["heatmaps"].shape
    assert np.abs(heatmaps - io["heatmaps"]).max() < 1e-4


def test_model_switched_between_dka_modes_gives_the_same_heatmaps(tiny_model, fixtures_dir):
    x = torch.from_numpy(np.load(fixtures_dir / "hrnext_tiny_crowdpose_io.npz")["input"])
    with torch.no_grad():
        grouped = tiny_model.set_dka_mode("grouped")(x)
        static = tiny_model.set_dka_mode("static")(x)
    assert (grouped - static).abs().max().item() < 1e-5


@pytest.mark.parametrize("arch, layout", [
    ("hrnext_tiny", "fixtures/hrnext_tiny_crowdpose.json"),
    ("hrnext_s", "spec/checkpoint_layout_hrnext_small_crowdpose.json"),
    ("hrnext_b", "spec/checkpoint_layout_hrnext_base_coco.json"),
])
def test_remapped_original_layout_is_exactly_the_model(arch, layout, shared_dir):
    """Every original tensor name and shape maps onto exactly one of ours, none left over."""
    spec = json.loads((shared_dir / layout).read_text())
    original = {k: torch.empty(v) for k, v in spec["params"].items()}
    remapped = remap_mmpose_state_dict(original, arch)
    ours = build_pose_model(arch, spec["num_joints"]).state_dict()
    assert sorted(remapped) == sorted(ours)
    assert all(remapped[k].shape == ours[k].shape for k in ours)


def test_remap_pins_the_renamed_keys():
    keys = {
        "keypoint_head.final_layer.weight": "head.weight",
        "backbone.layer1.0.layer_scale_1": "backbone.layer1.blocks.0.scale_dlp",
        "backbone.layer1.2.norm.bias": "backbone.layer1.norm.bias",
        "backbone.stage3.1.branches.2.1.norm1.running_var": "backbone.stage3.1.branches.2.blocks.1.norm_gffn.running_var",
        "backbone.stage2.0.branches.0.0.dlp.dw3x3.conv.aggregation.weight": "backbone.stage2.0.branches.0.blocks.0.dlp.conv.weight",
        "backbone.stage3.0.branches.2.0.dlp.dw3x3.conv.weight": "backbone.stage3.0.branches.2.blocks.0.dlp.conv.weight",
        "backbone.layer1.1.mlp1.spatial_gate.dwd.weight": "backbone.layer1.blocks.1.gffn.gsa.dwd.weight",
        "backbone.layer1.0.mlp2.proj1.conv.attention.norm.weight": "backbone.layer1.blocks.0.dffn.fc1.attention.norm.weight",
        "backbone.layer1.0.mlp2.norm3.bias": "backbone.layer1.blocks.0.dffn.norm3.bias",
        "backbone.stage4.0.fuse_layers.3.0.2.3.weight": "backbone.stage4.0.fuse_layers.3.0.2.3.weight",
        "backbone.transition1.1.0.0.weight": "backbone.transition1.1.0.0.weight",
    }
    remapped = remap_mmpose_state_dict({k: torch.zeros(1) for k in keys}, "hrnext_s")
    assert sorted(remapped) == sorted(keys.values())


@pytest.mark.parametrize("arch, joints, millions", [("hrnext_s", 14, 9.48), ("hrnext_b", 17, 31.73)])
def test_parameter_counts_match_the_paper(arch, joints, millions):
    # The published counts are of the CrowdPose (14-joint) small and the COCO (17-joint) base model.
    params = sum(p.numel() for p in build_pose_model(arch, joints).parameters())
    assert abs(params / 1e6 - millions) / millions < 1e-3


def test_stochastic_depth_rises_linearly_to_0_1():
    model = build_pose_model("hrnext_s", 17)
    rates = [m.drop_path.p for m in model.modules() if hasattr(m, "drop_path")]
    assert len(rates) == 2 + 2 * 2 * 2 + 4 * 3 * 2 + 2 * 4 * 2
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    np.testing.assert_allclose(np.diff(rates), 0.1 / (len(rates) - 1), rtol=1e-5)


def _without_drop_path(model):
    for m in model.modules():
        if hasattr(m, "drop_path"):
            m.drop_path.p = 0.0


def test_grad_checkpointing_gives_the_same_gradients_and_norm_statistics(tiny_model):
    model = build_pose_model("hrnext_tiny", 14)
    model.load_state_dict(tiny_model.state_dict())
    model.train()
    _without_drop_path(model)  # stochastic depth off: both runs must see the same network
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    grads, stats = [], []
    for enable in (False, True):
        model.load_state_dict(start)
        model.set_grad_checkpointing(enable)
        assert all(m.grad_checkpointing == enable for m in model.modules() if isinstance(m, CheckpointedSequential))
        model.zero_grad()
        model(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        # BatchNorm's running statistics after the step: the recompute in backward must not update
        # them a second time (it did: 231 of the 293 BatchNorms counted two batches).
        stats.append({k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)
    assert all(v == 1 for k, v in stats[1].items() if k.endswith("num_batches_tracked"))
    torch.testing.assert_close(stats[0], stats[1], atol=1e-6, rtol=1e-5)


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("shape, size, scale", [((2, 3, 8, 6), None, 2.0), ((2, 3, 8, 6), None, 4.0),
                                                ((1, 2, 2, 3), None, 8.0), ((2, 3, 9, 7), (17, 13), None),
                                                ((2, 3, 4, 3), (16, 12), None)])
def test_deterministic_bilinear_upsampling_has_the_native_output_and_gradient(deterministic, shape, size, scale):
    # Powers of two (HRNeXt's fusion) and a resize to a size (the fusion when a side is not a
    # multiple of 32): the matrix-product gradient must be F.interpolate's own.
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(0))
    native = torch.nn.functional.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=False)
    ours = upsample_bilinear(x, size=size, scale=scale)
    assert type(ours.grad_fn).__name__ == "_BilinearDeterministicBackwardBackward"
    assert torch.equal(ours, native)
    g = torch.randn_like(native)
    torch.testing.assert_close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(native, x, g)[0],
                               rtol=1e-12, atol=1e-12)


# Backward nodes of the ops PyTorch lists as having no deterministic CUDA kernel
# (torch.use_deterministic_algorithms): under warn_only they would make GPU runs differ run to run.
NONDETERMINISTIC_ON_CUDA = {"UpsampleBilinear2DBackward0", "UpsampleLinear1DBackward0", "UpsampleBicubic2DBackward0",
                            "UpsampleTrilinear3DBackward0", "AdaptiveAvgPool2DBackward0", "AdaptiveMaxPool2DBackward0",
                            "AvgPool3DBackward0", "MaxPool3DWithIndicesBackward0", "FractionalMaxPool2DBackward0",
                            "GridSampler2DBackward0", "ReflectionPad1DBackward0", "ReflectionPad2DBackward0",
                            "NllLossBackward0", "CumsumBackward0", "EmbeddingBagBackward0"}


def _backward_nodes(tensor: torch.Tensor) -> set[str]:
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


@pytest.mark.parametrize("arch", ["hrnext_tiny", "hrnet_w32"])
def test_deterministic_training_step_uses_no_op_without_a_deterministic_cuda_kernel(deterministic, arch):
    # runtime.deterministic on a GPU promises runs that repeat exactly (gpu_verify's resume step
    # compares weights to 1e-6): the training graph, loss included, must hold none of those ops.
    # 64 x 48 is not a multiple of 32, so the fusion's resize to a size is in the graph too.
    from hrnext_trt.training.loss import keypoint_mse_loss

    torch.manual_seed(0)
    model = build_pose_model(arch, 14).train()
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(2, 3, 64, 48, generator=g), torch.rand(2, 14, 16, 12, generator=g)
    loss = keypoint_mse_loss(model(x), target, torch.ones(2, 14))
    nodes = _backward_nodes(loss)
    assert not nodes & NONDETERMINISTIC_ON_CUDA, sorted(nodes & NONDETERMINISTIC_ON_CUDA)
    if arch.startswith("hrnext"):
        assert "_BilinearDeterministicBackwardBackward" in nodes
    torch.use_deterministic_algorithms(False)  # outside deterministic runs: the native kernel, as before
    assert arch.startswith("hrnet") or "UpsampleBilinear2DBackward0" in _backward_nodes(
        keypoint_mse_loss(model(x), target, torch.ones(2, 14)))


@pytest.mark.parametrize("dtype, min_cosine", [(torch.bfloat16, 0.9), (torch.float16, 0.99)])
def test_recipe_mixed_precision_with_checkpointing_trains_in_autocast(dtype, min_cosine):
    # The recipe's step (autocast + activation checkpointing + the trainer's loss) under the CPU's
    # autocast: the dtype handling a GPU run relies on (every op takes the half tensors; the loss and
    # the gradients stay float32) and gradients that point where float32's do. A fresh network: a
    # trained one in train mode at batch 2 amplifies half-precision rounding through BatchNorm's
    # batch statistics (measured, and left to scripts/amp_drift.py), which is not what this checks.
    from hrnext_trt.training.loss import keypoint_mse_loss

    torch.manual_seed(0)
    model = build_pose_model("hrnext_tiny", 14).train().set_grad_checkpointing(True)
    _without_drop_path(model)  # stochastic depth off: both runs must see the same network
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(2, 3, 64, 48, generator=g), torch.rand(2, 14, 16, 12, generator=g)
    weight = torch.ones(2, 14)
    grads = {}
    for amp in (None, dtype):
        model.zero_grad()
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            heatmaps = model(x)
            loss = keypoint_mse_loss(heatmaps, target, weight)
        assert heatmaps.dtype == (amp or torch.float32) and loss.dtype == torch.float32
        loss.backward()
        assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())
        grads[amp] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.nn.functional.cosine_similarity(grads[dtype], grads[None], dim=0) > min_cosine


@pytest.mark.parametrize("mode", ["grouped", "static"])
@pytest.mark.parametrize("dtype, max_rel", [(torch.bfloat16, 0.06), (torch.float16, 0.02)])
def test_both_dka_forms_infer_in_autocast(tiny_model, fixtures_dir, mode, dtype, max_rel):
    # bench's fp16/bf16 modes and validation under AMP: both DKA forms run in half precision and stay
    # near the float32 heatmaps (measured here: bf16 1.4-2.2 %, fp16 0.5 % relative).
    x = torch.from_numpy(np.load(fixtures_dir / "hrnext_tiny_crowdpose_io.npz")["input"])
    model = tiny_model.set_dka_mode(mode)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=dtype):
            half = model(x)
    assert half.dtype == dtype
    assert (half.float() - reference).norm() / reference.norm() < max_rel


def test_hrnet_starts_from_mmposes_initialisation():
    # mmpose 0.x initialises a top-down HRNet trained from scratch with normal(0, 0.001) convolutions
    # (backbone and head): the untrained heatmaps are near 0, as its targets mostly are. PyTorch's
    # default left them around 4 (a first loss of ~5 where mmpose's is ~0.002).
    from torch import nn

    torch.manual_seed(0)
    model = build_pose_model("hrnet_w32", 17)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([c.weight.detach().flatten() for c in convs])
    assert abs(float(weights.std()) - 0.001) < 1e-4 and all(c.bias is None or not c.bias.any() for c in convs)
    with torch.no_grad():
        heatmaps = model.train()(torch.randn(2, 3, 64, 48))
    assert float(heatmaps.abs().mean()) < 0.1
    # Every arch's head starts as mmpose's heatmap head; HRNeXt's backbone keeps its own init.
    hrnext = build_pose_model("hrnext_tiny", 17)
    assert abs(float(hrnext.head.weight.detach().std()) - 0.001) < 2e-4 and not hrnext.head.bias.detach().any()
    assert float(next(m for m in hrnext.backbone.modules() if isinstance(m, nn.Conv2d)).weight.detach().std()) > 0.01
