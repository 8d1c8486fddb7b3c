"""model.onnx of the published architectures runs in ONNX Runtime as PyTorch does, at any batch size."""

from __future__ import annotations

import numpy as np
import pytest

from hrnext_trt.export.onnx_export import export_onnx
from hrnext_trt.model_spec import ModelSpec
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner, read_onnx_metadata

torch = pytest.importorskip("torch")


# A small input keeps the test short (PyTorch on CPU is the slow part): the graph is the same at
# every size but for its constants. The 256x192 export is the fixture test (test_export_artifacts)
# and scripts/bench_export.py.
@pytest.mark.parametrize("arch", ["hrnext_s", "hrnet_w32"])
def test_onnx_matches_pytorch_at_batch_1_and_7(tmp_path, arch):
    from hrnext_trt.models import build_pose_model, prepare_for_export
    from tests.test_model_onnx import randomize_statistics

    input_size = (128, 96)
    torch.manual_seed(0)
    model = randomize_statistics(build_pose_model(arch, 14))  # BatchNorm folding shows in the output
    path = tmp_path / "model.onnx"
    info = export_onnx(prepare_for_export(model), path, ModelSpec.of(arch, 14, input_size, "crowdpose"), 17)

    meta = read_onnx_metadata(path)
    assert meta["arch"] == arch and meta["input_size"] == list(input_size) and meta["precision"] == "fp32"
    rng = np.random.default_rng(0)
    with OnnxRuntimeRunner(path, "fp32") as runner:
        assert runner.input_shape == (3, *input_size)  # the batch axis is the only dynamic one
        for batch in (1, 7):
            images = rng.standard_normal((batch, 3, *input_size), dtype=np.float32)
            onnx_out = runner.infer({"images": images})["heatmaps"]
            with torch.inference_mode():
                torch_out = model(torch.from_numpy(images)).numpy()  # the training-time (grouped DKA) form
            assert onnx_out.shape == (batch, 14, input_size[0] // 4, input_size[1] // 4)
            assert np.abs(onnx_out - torch_out).max() < 1e-4
    assert 0 < info["nodes"] < info["traced_nodes"]  # onnxslim folded the dynamic-shape arithmetic
    assert info["opset"] == 17
