"""Every arch exports to ONNX with a dynamic batch, and ONNX Runtime matches PyTorch."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from hrnext_trt.models import build_pose_model, load_pose_model, prepare_for_export
from hrnext_trt.models.dka import DynamicConv2d


def randomize_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """BN statistics and affines away from identity and larger layer scales, so that folding
    and every branch of the network show in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if ".scale_" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.5)
    return model.eval()


def export_and_run(model: nn.Module, path, input_size, batches=(1, 5), opset=18):
    import onnx
    import onnxruntime as ort

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
        torch.onnx.export(prepare_for_export(model), (torch.zeros(2, 3, *input_size),), str(path),
                          input_names=["images"], output_names=["heatmaps"], opset_version=opset, dynamo=False,
                          dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}})
    graph = onnx.load(str(path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = graph.graph.input, graph.graph.output
    assert (inp.name, out.name) == ("images", "heatmaps")
    assert inp.type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, *input_size]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for batch in batches:
        x = torch.randn(batch, 3, *input_size, generator=g)
        with torch.no_grad():
            expected = model(x).numpy()  # the eager model in its default (grouped) DKA form
        got = session.run(["heatmaps"], {"images": x.numpy()})[0]
        assert got.shape == expected.shape == (batch, model.num_joints, input_size[0] // 4, input_size[1] // 4)
        assert np.abs(got - expected).max() < 1e-4, f"batch {batch}"


def test_fixture_model_exports_and_matches(tmp_path, fixtures_dir):
    model = load_pose_model(fixtures_dir / "hrnext_tiny_crowdpose.pth", arch="hrnext_tiny", num_joints=14)
    export_and_run(model, tmp_path / "tiny.onnx", (256, 192), opset=17)


# hrnext_s and hrnet_w32 go through the project's exporter in test_export_onnx.py (the same checks).
@pytest.mark.parametrize("arch", ["hrnext_b", "hrnet_w48"])
def test_arch_exports_and_matches(arch, tmp_path):
    torch.manual_seed(0)
    model = randomize_statistics(build_pose_model(arch, 17))
    export_and_run(model, tmp_path / f"{arch}.onnx", (64, 64))


def test_export_form_folds_batchnorms_and_leaves_the_model_alone(fixtures_dir):
    model = load_pose_model(fixtures_dir / "hrnext_tiny_crowdpose.pth", arch="hrnext_tiny", num_joints=14)
    model = randomize_statistics(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_form = prepare_for_export(model)
    # Only the blocks' pre-norms stay (they also feed a residual, so there is no conv to take them).
    remaining = {n.rsplit(".", 1)[-1] for n, m in export_form.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert remaining == {"norm_gffn", "norm_dffn"}
    assert all(m.mode == "static" for m in export_form.modules() if isinstance(m, DynamicConv2d))
    assert not export_form.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(m.mode == "grouped" for m in model.modules() if isinstance(m, DynamicConv2d))
    x = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (export_form(x) - model(x)).abs().max().item() < 1e-5
