"""One full export of the paper-layout fixture (FP32, FP16, INT8) through the CLI, then what it claims."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrnext_trt.contract import installed_builders
from hrnext_trt.engines import load_manifest, verify_files
from hrnext_trt.manifest import sha256_file
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner, read_onnx_metadata

torch = pytest.importorskip("torch")

FIXTURE = "hrnext_tiny_crowdpose"
CALIB_CROPS = 24
HELDOUT_CROPS = 8


ONNX_FILES = {"model.onnx", "model_fp16.onnx", "model_int8.onnx"}
# What an engine build adds where a builder is installed (CI installs TensorRT for RTX: see README).
ENGINE_FILES = {f"{kind}_{p}.{ext}" for p in ("fp32", "fp16", "int8") for kind, ext in (("model", "engine"),
                                                                                         ("build", "log"))}


@pytest.fixture()
def export(fixture_export):
    """The session's ``hrnext-trt export-engine`` of the mmpose-layout fixture: (folder, printed output)."""
    return fixture_export


def test_onnx_reproduces_the_original_code(export, fixtures_dir):
    """The fixture's heatmaps come from the paper's own code: model.onnx must give them back."""
    out, _ = export
    io = np.load(fixtures_dir / f"{FIXTURE}_io.npz")
    with OnnxRuntimeRunner(out / "model.onnx", "fp32") as runner:
        heatmaps = runner.infer({"images": io["input"]})["heatmaps"]
    assert heatmaps.shape == io["heatmaps"].shape
    assert np.abs(heatmaps - io["heatmaps"]).max() < 1e-4


def test_manifest_records_what_it_claims(export, fixtures_dir):
    import modelopt
    import onnx
    import onnxruntime

    from hrnext_trt.keypoints import CROWDPOSE

    out, _ = export
    manifest = load_manifest(out)
    verify_files(manifest, out)
    on_disk = {p.name for p in out.iterdir()} - {"manifest.json"}
    expected = ONNX_FILES | (ENGINE_FILES if installed_builders() else set())
    assert set(manifest["artifacts"]) == on_disk == expected
    for name, precision in (("model.onnx", "fp32"), ("model_fp16.onnx", "fp16"), ("model_int8.onnx", "int8")):
        entry = manifest["artifacts"][name]
        data = (out / name).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == sha256_file(out / name)
        meta = read_onnx_metadata(out / name)
        assert entry["precision"] == meta["precision"] == precision
        assert (meta["arch"], meta["num_joints"], meta["input_size"], meta["dataset"]) == \
               ("hrnext_tiny", 14, [256, 192], "crowdpose")
        assert meta["flip_pairs"] == [list(p) for p in CROWDPOSE.flip_pairs]
        assert meta["mean"] == pytest.approx([0.485, 0.456, 0.406])
    checkpoint = fixtures_dir / f"{FIXTURE}.pth"
    assert manifest["source_checkpoint"]["sha256"] == sha256_file(checkpoint)
    assert manifest["model"]["input_size"] == [256, 192] and manifest["batch_profile"] == {"min": 1, "opt": 4,
                                                                                           "max": 8}
    versions = manifest["versions"]
    assert (versions["torch"], versions["onnx"], versions["onnxruntime"], versions["modelopt"]) == \
           (torch.__version__, onnx.__version__, onnxruntime.__version__, modelopt.__version__)
    assert manifest["gpu"] is None and manifest["engines"]["built"] is bool(installed_builders())
    assert manifest["crops"]["calibration_crops"] == CALIB_CROPS and manifest["crops"]["heldout_crops"] == HELDOUT_CROPS
    assert {"load", "onnx_fp32", "onnx_fp16", "onnx_int8"} <= set(manifest["timings_s"])
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_precision_is_in_the_graph(export):
    """FP16 as float16 weights, INT8 as Q/DQ pairs; both keep float32 inputs and outputs."""
    import onnx

    out, _ = export
    fp16, int8 = onnx.load(str(out / "model_fp16.onnx")), onnx.load(str(out / "model_int8.onnx"))
    float16 = onnx.TensorProto.FLOAT16
    assert sum(init.data_type == float16 for init in fp16.graph.initializer) > 10
    assert sum(node.op_type == "QuantizeLinear" for node in int8.graph.node) > 10
    for model in (fp16, int8):
        for value in (*model.graph.input, *model.graph.output):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_fp16_and_int8_stay_within_bounds(export, fixtures_dir, data_dir):
    """On real crops of images no export step saw (coco-mini val), against the PyTorch model.

    Bounds on the relative heatmap error ||x - ref|| / ||ref||: float16 carries 11 significant
    bits (5e-4 per rounding), measured ~3e-3 after ~40 layers -> bound 1e-2. INT8 rounds each
    activation tensor to 255 levels (0.4% of its range per tensor), compounded along the
    network's ~20 quantized stages -> measured ~4% -> bound 10%; a broken scale (e.g. float16-
    clamped or uncalibrated) lands far above. The fixture's weights are random, so its heatmaps
    are nearly flat and their argmax is not a stable accuracy measure: keypoint agreement is
    reported by the export, not bounded here.
    """
    from hrnext_trt.data import load_dataset
    from hrnext_trt.models import load_pose_model
    from hrnext_trt.pipeline import iter_batches

    out, _ = export
    crops = next(iter_batches(load_dataset("coco", data_dir / "coco-mini", "val"), (256, 192), 8)).images
    model = load_pose_model(fixtures_dir / f"{FIXTURE}.pth", arch="hrnext_tiny", num_joints=14)
    with torch.inference_mode():
        reference = model(torch.from_numpy(crops)).numpy()
    manifest = load_manifest(out)
    for name, precision, bound in (("model_fp16.onnx", "fp16", 1e-2), ("model_int8.onnx", "int8", 0.1)):
        with OnnxRuntimeRunner(out / name, precision) as runner:
            heatmaps = runner.infer({"images": crops})["heatmaps"]
        assert np.isfinite(heatmaps).all()
        assert np.linalg.norm(heatmaps - reference) / np.linalg.norm(reference) < bound
        assert manifest["artifacts"][name]["accuracy"]["rel_err"] < bound  # the export's own held-out check
    assert manifest["artifacts"]["model.onnx"]["accuracy"]["max_abs_err"] < 1e-4


def test_cli_prints_the_table_and_the_next_command(export):
    out, printed = export
    assert f"accuracy vs PyTorch FP32 on {HELDOUT_CROPS} held-out crops" in printed
    for name in ("model.onnx", "model_fp16.onnx", "model_int8.onnx"):
        assert any(line.startswith(name) and "%" in line for line in printed.splitlines())
    if installed_builders():
        assert "engines built by tensorrt" in printed  # tensorrt or tensorrt-rtx
        assert all(any(line.startswith(f"model_{p}.engine") for line in printed.splitlines())
                   for p in ("fp32", "fp16", "int8"))
    else:
        assert "engines not built: neither TensorRT" in printed and 'pip install "hrnext-trt[trt-rtx]"' in printed
    assert "hrnext-trt trt-eval --checkpoint" in printed and f"--engines {out} --dataset crowdpose" in printed
    # The fixture (mmpose layout) records no crop size: the default it is exported at is said, with the flag.
    assert ("model: hrnext_tiny, 14 joints (crowdpose), input 256x192 (the default: the checkpoint records no input "
            "size; pass --input-size") in printed


def test_the_printed_trt_eval_command_finds_the_model_s_dataset(data_dir, tmp_path):
    """An MPII model (no bundled sample, calibrated on COCO): the command the export prints scores on
    the root its training validated on (was: data/mpii, a folder that need not exist)."""
    from click.testing import CliRunner

    from hrnext_trt.cli import main
    from hrnext_trt.models import write_arch_checkpoint

    path = write_arch_checkpoint("hrnext_tiny", 16, (64, 64), "mpii", tmp_path / "mpii_tiny.pth")
    ckpt = torch.load(path, weights_only=True)
    root = data_dir / "mpii-mini"
    split = {"name": "mpii", "root": str(root)}
    ckpt["config"] = {"data": {"train": split, "val": split}}
    torch.save(ckpt, path)
    out = tmp_path / "my export"  # a space: the printed command quotes it (was: pasted as two arguments)
    result = CliRunner().invoke(main, ["export-engine", str(path), "--no-engines", "--verify-images", "2",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"--dataset mpii --data-root {root.resolve()}" in result.stdout
    assert load_manifest(out)["source_checkpoint"]["data_root"] == str(root.resolve())
    import shlex

    line = next(line for line in result.stdout.splitlines() if "hrnext-trt trt-eval" in line)
    args = shlex.split(line[line.index("hrnext-trt"):])
    assert args[args.index("--engines") + 1] == str(out)
