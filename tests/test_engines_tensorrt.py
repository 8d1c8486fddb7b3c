"""Engines built and run for real: needs a builder (TensorRT or TensorRT for RTX), pycuda and a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from hrnext_trt.contract import installed_builders
from hrnext_trt.engines.builders import RTX_COMPUTE_CAPABILITIES, TENSORRT

if not installed_builders():
    pytest.skip('neither TensorRT nor TensorRT for RTX is installed (pip install "hrnext-trt[trt]" or '
                '"hrnext-trt[trt-rtx]"); running engines needs one and a GPU', allow_module_level=True)
pytest.importorskip("pycuda.driver", reason="pycuda is not installed (pip install pycuda; it builds against the CUDA "
                                            "toolkit)")

from hrnext_trt.engines import TensorRTEngine, load_manifest, verify_files  # noqa: E402
from hrnext_trt.engines.cuda_device import gpu_info  # noqa: E402
from hrnext_trt.errors import HrnextError  # noqa: E402
from hrnext_trt.export import ExportConfig, export_artifacts  # noqa: E402

if gpu_info() is None:
    pytest.skip("no CUDA GPU visible: running engines needs one", allow_module_level=True)
if TENSORRT not in installed_builders() and gpu_info()["compute_capability"] not in RTX_COMPUTE_CAPABILITIES:
    pytest.skip(f"TensorRT for RTX does not build for this GPU ({gpu_info()['name']}) and TensorRT is not installed",
                allow_module_level=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fixtures_dir, data_dir):
    out = tmp_path_factory.mktemp("trt_export")
    config = ExportConfig(checkpoint=fixtures_dir / "hrnext_tiny_crowdpose.pth", out_dir=out, arch="hrnext_tiny",
                          num_joints=14, precisions=("fp32", "fp16", "int8"), calib_data=data_dir / "coco-mini",
                          calib_images=32, verify_images=8, batch=(1, 2, 4))
    return out, export_artifacts(config)


def test_engines_and_logs_are_listed_and_hashed(exported):
    out, manifest = exported
    capability = gpu_info()["compute_capability"]
    for precision in ("fp32", "fp16", "int8"):
        entry = manifest["artifacts"][f"model_{precision}.engine"]
        assert entry["precision"] == precision and entry["built_from"].startswith("model")
        assert entry["targets"] == [capability]
        # What the deserialised engine declares: the exported I/O and the batch profile 1, 2, 4.
        io = {t["name"]: t for t in entry["engine"]["io"]}
        assert (io["images"]["dtype"], io["heatmaps"]["dtype"]) == ("float32", "float32")
        assert io["images"]["profile"] == {"min": [1, 3, 256, 192], "opt": [2, 3, 256, 192], "max": [4, 3, 256, 192]}
        assert (out / f"build_{precision}.log").stat().st_size > 0
    if manifest["engines"]["builder"] == TENSORRT:
        assert entry["gpu"]["compute_capability"] == capability and (out / "timing.cache").stat().st_size > 0
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


def test_a_runner_pads_a_batch_below_the_profile_s_min(tmp_path, fixtures_dir, data_dir):
    """An export for batches 2..4 (--batch 2,2,4) takes one crop through the runner: padded to 2, the
    padding's output dropped, the crop's heatmaps those of a full batch."""
    from hrnext_trt.runners.tensorrt import TensorRTRunner

    config = ExportConfig(checkpoint=fixtures_dir / "hrnext_tiny_crowdpose.pth", out_dir=tmp_path / "exp",
                          arch="hrnext_tiny", num_joints=14, precisions=("fp32",), calib_data=data_dir / "coco-mini",
                          verify_images=2, batch=(2, 2, 4))
    manifest = export_artifacts(config)
    images = np.load(fixtures_dir / "hrnext_tiny_crowdpose_io.npz")["input"][:2]
    with TensorRTRunner(tmp_path / "exp" / "model_fp32.engine", "fp32", manifest=manifest) as runner:
        one = runner.infer({"images": images[:1]})["heatmaps"]
        both = runner.infer({"images": images})["heatmaps"]
    assert one.shape == (1, *both.shape[1:])
    np.testing.assert_allclose(one[0], both[0], atol=1e-4)


def test_an_engine_never_deactivated_does_not_abort_the_process_at_exit(exported):
    """pycuda aborts a process whose context stack is not empty at exit ("PyCUDA ERROR: The context
    stack was not empty upon module cleanup"): an engine a script never closes is deactivated first."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out, _ = exported
    script = ("import numpy as np\nfrom hrnext_trt.engines import TensorRTEngine\n"
              f"engine = TensorRTEngine({str(out / 'model_fp32.engine')!r})\nengine.activate()\n"
              "print(engine.infer({'images': np.zeros((1, 3, 256, 192), np.float32)})['heatmaps'].shape)\n")
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0 and "PyCUDA ERROR" not in done.stderr, done.stderr[-2000:]
    assert "(1, 14, 64, 48)" in done.stdout, done.stdout
