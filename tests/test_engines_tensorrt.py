"""TensorRT engines built and run for real: needs TensorRT, pycuda and a GPU, skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorrt", reason='TensorRT is not installed (pip install "hrnext-trt[trt]"); engine tests '
                                       "need it and a GPU")
pytest.importorskip("pycuda.driver", reason='pycuda is not installed (pip install "hrnext-trt[trt]")')

from hrnext_trt.engines import TensorRTEngine, load_manifest, verify_files  # noqa: E402
from hrnext_trt.engines.cuda_device import gpu_info  # noqa: E402
from hrnext_trt.errors import HrnextError  # noqa: E402
from hrnext_trt.export import ExportConfig, export_artifacts  # noqa: E402

if gpu_info() is None:
    pytest.skip("no CUDA GPU visible: TensorRT engines need one", allow_module_level=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fixtures_dir, data_dir):
    out = tmp_path_factory.mktemp("trt_export")
    config = ExportConfig(checkpoint=fixtures_dir / "hrnext_tiny_crowdpose.pth", out_dir=out, arch="hrnext_tiny",
                          num_joints=14, precisions=("fp32", "fp16", "int8"), calib_data=data_dir / "coco-mini",
                          calib_images=32, verify_images=8, batch=(1, 2, 4))
    return out, export_artifacts(config)


def test_engines_and_logs_are_listed_and_hashed(exported):
    out, manifest = exported
    for precision in ("fp32", "fp16", "int8"):
        entry = manifest["artifacts"][f"model_{precision}.engine"]
        assert entry["precision"] == precision and entry["built_from"].startswith("model")
        assert entry["gpu"]["compute_capability"] == gpu_info()["compute_capability"]
        assert (out / f"build_{precision}.log").stat().st_size > 0
    assert (out / "timing.cache").stat().st_size > 0
    verify_files(load_manifest(out), out)


def test_fp32_engine_reproduces_the_fixture(exported, fixtures_dir):
    out, _ = exported
    io = np.load(fixtures_dir / "hrnext_tiny_crowdpose_io.npz")
    with TensorRTEngine(out / "model_fp32.engine") as engine:
        heatmaps = engine.infer({"images": io["input"]})["heatmaps"]
        assert heatmaps.shape == io["heatmaps"].shape
        # FP32 without TF32: only kernel summation order differs from PyTorch.
        assert np.abs(heatmaps - io["heatmaps"]).max() < 1e-3
        with pytest.raises(HrnextError, match="outside the engine's batch profile 1..4"):
            engine.infer({"images": np.zeros((5, 3, 256, 192), np.float32)})


def test_low_precision_engines_keep_the_keypoints(exported):
    _, manifest = exported
    assert manifest["artifacts"]["model_fp16.engine"]["accuracy"]["rel_err"] < 0.02
    assert manifest["artifacts"]["model_int8.engine"]["accuracy"]["rel_err"] < 0.5


def test_torch_cuda_tensor_runs_in_place(exported, fixtures_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    out, _ = exported
    io = np.load(fixtures_dir / "hrnext_tiny_crowdpose_io.npz")
    images = torch.from_numpy(io["input"]).cuda()
    with TensorRTEngine(out / "model_fp32.engine") as engine:
        heatmaps = engine.infer({"images": images})["heatmaps"]
        host = engine.infer({"images": io["input"]})["heatmaps"]
    assert heatmaps.is_cuda and heatmaps.shape == images.shape[:1] + host.shape[1:]
    assert np.abs(heatmaps.cpu().numpy() - host).max() < 1e-5
