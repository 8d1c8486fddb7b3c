"""Wrong input for an export fails at once with one line that names the value and the fix."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hrnext_trt.errors import HrnextError
from hrnext_trt.cli.params import parse_batch_profile, parse_input_size
from hrnext_trt.export import ExportConfig, export_artifacts

torch = pytest.importorskip("torch")

FIXTURE = "hrnext_tiny_crowdpose.pth"


@pytest.fixture(scope="module")
def project_checkpoint(tmp_path_factory):
    """A checkpoint in the project's own format that records its arch and its 256x192 input size."""
    from hrnext_trt.models import build_pose_model

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"format": "hrnext-trt", "format_version": 1, "arch": "hrnext_tiny", "num_joints": 14,
                "input_size": [256, 192], "dataset": "crowdpose",
                "state_dict": build_pose_model("hrnext_tiny", 14).state_dict()}, path)
    return path


@pytest.mark.parametrize("text, message", [
    ("250x190", "not made of positive multiples of 4"),
    ("256", "not HEIGHTxWIDTH"),
    ("256x192x3", "not HEIGHTxWIDTH"),
    ("0x192", "multiples of 4"),
])
def test_bad_input_size(text, message):
    with pytest.raises(HrnextError, match=message):
        parse_input_size(text)


def test_bad_batch_profile(tmp_path, fixtures_dir):
    with pytest.raises(HrnextError, match="not MIN,OPT,MAX"):
        parse_batch_profile("1;8;16")
    with pytest.raises(HrnextError, match="1 <= MIN <= OPT <= MAX"):
        ExportConfig(checkpoint=fixtures_dir / FIXTURE, out_dir=tmp_path, batch=parse_batch_profile("8,4,16"))


def test_input_size_other_than_trained(project_checkpoint, tmp_path):
    config = ExportConfig(checkpoint=project_checkpoint, out_dir=tmp_path / "out", input_size=(384, 288))
    with pytest.raises(HrnextError, match=r"384x288 differs from the 256x192 the checkpoint was trained at"):
        export_artifacts(config)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_checkpoint_of_another_arch(project_checkpoint, tmp_path, fixtures_dir):
    # The paper-layout fixture holds hrnext_tiny weights: they do not fit hrnext_s.
    config = ExportConfig(checkpoint=fixtures_dir / FIXTURE, out_dir=tmp_path, arch="hrnext_s", num_joints=14)
    with pytest.raises(HrnextError, match="does not fit hrnext_s"):
        export_artifacts(config)
    config = ExportConfig(checkpoint=project_checkpoint, out_dir=tmp_path, arch="hrnet_w32")
    with pytest.raises(HrnextError, match="holds hrnext_tiny, model hrnet_w32 was asked for"):
        export_artifacts(config)


def test_cli_reports_one_line_and_exit_code_2(fixtures_dir, tmp_path):
    from hrnext_trt.cli import main

    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "mmpose file, which does not record its model: pass --arch and --joints" in result.output
    result = CliRunner().invoke(main, ["export-engine", str(tmp_path / "missing.pth")])
    assert result.exit_code == 2 and "not found" in result.output
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--input-size", "255x192"])
    assert result.exit_code == 2 and "multiples of 4" in result.output
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--arch", "hrnext_tiny",
                                       "--joints", "14", "--no-engines", "--builder", "tensorrt-rtx",
                                       "--out", str(tmp_path / "none")])
    assert result.exit_code == 2 and "--no-engines builds no engine" in result.output
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--arch", "hrnext_tiny",
                                       "--joints", "14", "--no-engines", "--timing-cache", str(tmp_path / "tc.bin"),
                                       "--out", str(tmp_path / "none")])
    assert result.exit_code == 2 and "drop --builder, --compute-capability and --timing-cache" in result.output
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--int8", "--calib-data",
                                       str(tmp_path / "nope"), "--out", str(tmp_path / "none")])
    assert result.exit_code == 2 and f"calibration data root {tmp_path / 'nope'} not found" in result.output
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--calib-images", "100",
                                       "--out", str(tmp_path / "none")])
    assert result.exit_code == 2 and "--calib-images 100 counts INT8's calibration crops: add --int8" in result.output
    assert not (tmp_path / "none").exists()
    # A refusal with the default --out (engines/<stem>) leaves no empty engines/ folder behind either.
    result = CliRunner().invoke(main, ["export-engine", str(fixtures_dir / FIXTURE), "--arch", "hrnext_tiny",
                                       "--joints", "14", "--builder", "tensorrt",
                                       "--out", str(tmp_path / "engines" / "deeper" / "model")])
    assert result.exit_code == 2 and "tensorrt" in result.output and not (tmp_path / "engines").exists()


def test_a_calibration_set_too_small_for_its_held_out_crops_names_both_ways_out(data_dir):
    from hrnext_trt.export.calibration import make_crop_sets

    # crowdpose-mini's test split: 2 images, both taken by the 16 held-out crops.
    with pytest.raises(HrnextError, match=r"2 images, and its 16 held-out crops took every image.*"
                                          r"larger --calib-data, or fewer --verify-images"):
        make_crop_sets("crowdpose", data_dir / "crowdpose-mini", (64, 48), 8, 16, split="test")
    crops = make_crop_sets("crowdpose", data_dir / "crowdpose-mini", (64, 48), 8, 1, split="test")
    assert len(crops.heldout) == 1 and len(crops.calibration) > 0


def test_int8_calibrated_on_the_scored_split_is_said(project_checkpoint, data_dir, tmp_path, caplog):
    # The bundled crowdpose sample holds only its test split: calibrating there is allowed (was: the
    # split could not be chosen) and the export says that trt-eval's default split then scores INT8
    # on its own calibration images.
    config = ExportConfig(checkpoint=project_checkpoint, out_dir=tmp_path / "out", precisions=("fp32", "int8"),
                          calib_data=data_dir / "crowdpose-mini", calib_dataset="crowdpose", calib_split="test",
                          calib_images=4, verify_images=1, build_engines=False)
    with caplog.at_level("WARNING"):
        export_artifacts(config)
    assert "INT8 is calibrated on the crowdpose test split, the one trt-eval scores by default" in caplog.text


def test_a_builder_is_never_given_options_it_would_ignore(tmp_path):
    """--timing-cache where TensorRT for RTX builds (it keeps none) is refused (was: ignored); a
    re-export drops an old folder's timing cache that no builder used (was: kept, unlisted)."""
    from hrnext_trt.cli import main
    from hrnext_trt.contract import installed_builders, nvidia_gpu_present
    from hrnext_trt.models import write_arch_checkpoint

    checkpoint = write_arch_checkpoint("hrnext_tiny", 14, (64, 64), "crowdpose", tmp_path / "tiny.pth")
    out = tmp_path / "exp"
    if "tensorrt-rtx" in installed_builders() and not nvidia_gpu_present():
        result = CliRunner().invoke(main, ["export-engine", str(checkpoint), "--timing-cache", str(tmp_path / "tc"),
                                           "--verify-images", "2", "--out", str(out)])
        assert result.exit_code == 2 and "--timing-cache: TensorRT for RTX builds here and keeps no timing cache" \
            in result.output and not out.exists(), result.output
    for _ in range(2):
        result = CliRunner().invoke(main, ["export-engine", str(checkpoint), "--no-engines", "--verify-images", "2",
                                           "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
        (out / "timing.cache").write_bytes(b"junk")  # as a GPU export would have left it
