"""The deployment runtime's manifest checks: pure Python, so they run without TensorRT or a GPU."""

from __future__ import annotations

import json

import pytest

from hrnext_trt.engines import (EngineNotRunnableHere, TensorRTEngine, check_engine_builder, check_engine_gpu,
                                check_engine_input_shape, load_manifest, verify_files)
from hrnext_trt.manifest import MANIFEST_FORMAT, MANIFEST_VERSION, sha256_file
from hrnext_trt.errors import HrnextError

TRT = "10.13.3.9"
GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


@pytest.fixture()
def export_dir(tmp_path):
    """A folder as export-engine leaves it: one engine file and its manifest."""
    engine = tmp_path / "model_fp16.engine"
    engine.write_bytes(b"serialized engine bytes")
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "model": {"arch": "hrnext_s", "num_joints": 14, "input_size": [256, 192]},
        "versions": {"tensorrt": TRT},
        "gpu": GPU,
        "batch_profile": {"min": 1, "opt": 8, "max": 16},
        "artifacts": {engine.name: {"kind": "tensorrt", "precision": "fp16", "size": engine.stat().st_size,
                                    "sha256": sha256_file(engine), "tensorrt_version": TRT, "gpu": GPU}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_matching_runtime_and_shapes_pass(export_dir):
    manifest = load_manifest(export_dir)
    check_engine_builder(manifest, "model_fp16.engine", "tensorrt", TRT)
    check_engine_gpu(manifest, "model_fp16.engine", GPU["name"], GPU["compute_capability"])
    for batch in (1, 8, 16):
        check_engine_input_shape(manifest, (batch, 3, 256, 192))
    verify_files(manifest, export_dir)


def test_other_tensorrt_version_is_one_clear_line(export_dir):
    manifest = load_manifest(export_dir)
    with pytest.raises(HrnextError, match=r"built with TensorRT 10\.13\.3\.9 but TensorRT 10\.8\.0\.43 is running") as err:
        check_engine_builder(manifest, "model_fp16.engine", "tensorrt", "10.8.0.43")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, capability, message", [
    ("NVIDIA A100-SXM4-80GB", "8.0", r"compute capability 9\.0 .* has 8\.0"),
    ("NVIDIA H100 PCIe", "9.0", r"built on a NVIDIA H100 80GB HBM3 but this GPU is a NVIDIA H100 PCIe"),
])
def test_other_gpu_is_refused(export_dir, name, capability, message):
    with pytest.raises(HrnextError, match=message):
        check_engine_gpu(load_manifest(export_dir), "model_fp16.engine", name, capability)


@pytest.mark.parametrize("shape, message", [
    ((17, 3, 256, 192), r"batch 17 is outside the engine's batch profile 1\.\.16"),
    ((0, 3, 256, 192), r"batch 0 is outside"),
    ((4, 3, 384, 288), r"input shape \(4, 3, 384, 288\) does not fit this export: it takes \(batch, 3, 256, 192\)"),
    ((3, 256, 192), r"does not fit"),
])
def test_shape_outside_the_export_is_refused(export_dir, shape, message):
    with pytest.raises(HrnextError, match=message):
        check_engine_input_shape(load_manifest(export_dir), shape)


def test_changed_or_missing_file_is_found(export_dir):
    manifest = load_manifest(export_dir)
    (export_dir / "model_fp16.engine").write_bytes(b"serialized engine bytez")  # same size, one byte differs
    with pytest.raises(HrnextError, match="sha256 differs"):
        verify_files(manifest, export_dir)
    (export_dir / "model_fp16.engine").unlink()
    with pytest.raises(HrnextError, match=r"is listed in .*manifest.json but missing"):
        verify_files(manifest, export_dir)


def test_unlisted_engine_and_bad_manifests(export_dir, tmp_path_factory):
    manifest = load_manifest(export_dir / "manifest.json")
    with pytest.raises(HrnextError, match="model_int8.engine is not listed in the manifest"):
        check_engine_builder(manifest, "model_int8.engine", "tensorrt", TRT)
    other = tmp_path_factory.mktemp("bad")
    with pytest.raises(HrnextError, match="not found"):
        load_manifest(other)
    (other / "manifest.json").write_text("{not json")
    with pytest.raises(HrnextError, match="not readable JSON"):
        load_manifest(other)
    (other / "manifest.json").write_text(json.dumps({"format": MANIFEST_FORMAT, "format_version": 99}))
    with pytest.raises(HrnextError, match="format version 99"):
        load_manifest(other)


RTX = "1.7.1.116"


def rtx_export(export_dir, targets=("8.6", "8.9")):
    """The folder's engine as TensorRT for RTX records it: builder, version, compute capabilities."""
    document = json.loads((export_dir / "manifest.json").read_text())
    entry = document["artifacts"]["model_fp16.engine"]
    del entry["tensorrt_version"], entry["gpu"]
    entry.update(builder="tensorrt-rtx", builder_version=RTX, targets=list(targets))
    (export_dir / "manifest.json").write_text(json.dumps(document))
    return load_manifest(export_dir)


def test_rtx_engine_runs_on_any_gpu_of_its_targets(export_dir):
    manifest = rtx_export(export_dir)
    check_engine_builder(manifest, "model_fp16.engine", "tensorrt-rtx", RTX)
    for name, capability in (("NVIDIA GeForce RTX 4090", "8.9"), ("NVIDIA RTX A6000", "8.6")):
        check_engine_gpu(manifest, "model_fp16.engine", name, capability)


@pytest.mark.parametrize("builder, version, message", [
    ("tensorrt", TRT, r"built by TensorRT for RTX but this runtime is TensorRT: run it with TensorRT for RTX "
                      r"\(pip install \"hrnext-trt\[trt-rtx\]\"\)"),
    ("tensorrt-rtx", "1.8.0.1", r"built with TensorRT for RTX 1\.7\.1\.116 but TensorRT for RTX 1\.8\.0\.1 is running"),
])
def test_rtx_engine_of_another_builder_or_version_is_refused(export_dir, builder, version, message):
    with pytest.raises(EngineNotRunnableHere, match=message) as err:
        check_engine_builder(rtx_export(export_dir), "model_fp16.engine", builder, version)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, capability, message", [
    ("NVIDIA GeForce RTX 5090", "12.0", r"built for compute capabilities 8\.6, 8\.9 but this GPU \(NVIDIA GeForce RTX "
                                        r"5090\) has 12\.0: rebuild it with .*--compute-capability 12\.0"),
    ("NVIDIA H100 80GB HBM3", "9.0", r"has 9\.0: TensorRT for RTX does not build for it: rebuild it with "
                                     r"`--builder tensorrt`"),
])
def test_rtx_engine_on_a_gpu_outside_its_targets_is_refused(export_dir, name, capability, message):
    # EngineNotRunnableHere: a comparison shows the engine as a row saying why, not a stop.
    with pytest.raises(EngineNotRunnableHere, match=message):
        check_engine_gpu(rtx_export(export_dir), "model_fp16.engine", name, capability)


def test_tensorrt_engine_needs_tensorrt_installed(export_dir):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: this checks the machine without it")
    engine = TensorRTEngine(export_dir / "model_fp16.engine")  # cheap: nothing is loaded yet
    with pytest.raises(HrnextError, match=r'TensorRT is not installed: pip install "hrnext-trt\[trt\]"') as err:
        with engine:
            pass
    assert "\n" not in str(err.value)
    with pytest.raises(HrnextError, match="not found"):
        TensorRTEngine(export_dir / "missing.engine").activate()


def test_a_runner_takes_fewer_crops_than_the_profile_s_min(export_dir):
    """An export with --batch 8,16,16 met a dataset's last batch (or a frame's few people) of 6 crops
    and stopped mid-run: the runner pads such a batch up to MIN (and drops the padding's outputs),
    so only batches above MAX are refused. Where an engine runs, tests/test_engines_tensorrt.py
    checks the padded outputs."""
    from hrnext_trt.runners.tensorrt import TensorRTRunner

    manifest_path = export_dir / "manifest.json"
    document = json.loads(manifest_path.read_text())
    document["batch_profile"] = {"min": 8, "opt": 16, "max": 16}
    manifest_path.write_text(json.dumps(document))
    runner = TensorRTRunner(export_dir / "model_fp16.engine", "fp16", manifest=load_manifest(export_dir))
    for batch in (1, 6, 8, 16):
        runner.check_batch(batch)
    with pytest.raises(HrnextError, match=r"batch 17 is outside the engine's batch profile 8\.\.16"):
        runner.check_batch(17)
