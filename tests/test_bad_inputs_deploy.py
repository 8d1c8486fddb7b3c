"""Bad inputs of the deployment commands (trt-eval, bench, demo, checkpoints): one line, exit 2, and
before the long work (see docs/BAD_INPUTS.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.errors import HrnextError
from hrnext_trt.contract import nvidia_gpu_present, unavailable_reason

from .test_trt_eval import make_tiny_export

torch = pytest.importorskip("torch")

FIXTURE = "hrnext_tiny_crowdpose.pth"  # the paper's mmpose layout: records no arch, joints or input size


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_export(tmp_path_factory)


def _run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def _trt_eval(checkpoint, engines, data_root, *extra):
    return _run("trt-eval", "--checkpoint", checkpoint, "--engines", engines, "--dataset", "crowdpose",
                "--data-root", data_root, "--backends", "pytorch,onnxruntime", "--batch", "4", "--iters", "1",
                "--warmup", "0", "--device", "cpu", "--threads", "1", *extra)


def test_trt_eval_refuses_a_checkpoint_other_than_the_exported_one(tiny, tmp_path, data_dir):
    checkpoint, engines = tiny
    other = tmp_path / "epoch_40.pth"
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["epoch"] = 40  # same model, another file: the sha256 differs
    torch.save(ckpt, other)
    code, out = _trt_eval(other, engines, tmp_path / "not_read_yet")
    assert code == 2
    line = _one_error_line(out)
    assert f"--checkpoint {other} is not the checkpoint {engines} was exported from" in line
    assert "--other-checkpoint" in line

    code, out = _trt_eval(other, engines, data_dir / "crowdpose-mini", "--other-checkpoint", "--json",
                          tmp_path / "r.json")
    assert code == 0, out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["checkpoint_is_exported_one"] is False
    assert report["rows"][0]["backend"] == "pytorch" and "not the exported checkpoint" in report["rows"][0]["notes"]
    assert any("dAP compares two models" in note for note in report["footnotes"])

    code, out = _trt_eval(checkpoint, engines, data_dir / "crowdpose-mini", "--json", tmp_path / "same.json")
    assert code == 0, out
    assert json.loads((tmp_path / "same.json").read_text())["meta"]["checkpoint_is_exported_one"] is True


def test_trt_eval_and_demo_take_arch_and_joints_for_the_papers_checkpoints(fixtures_dir, data_dir, tmp_path):
    ckpt = fixtures_dir / FIXTURE
    args = ("trt-eval", "--checkpoint", ckpt, "--dataset", "crowdpose", "--data-root", data_dir / "crowdpose-mini",
            "--backends", "pytorch", "--batch", "2", "--iters", "1", "--warmup", "0", "--device", "cpu",
            "--input-size", "64x64")
    code, out = _run(*args)
    assert code == 2
    assert f"checkpoint {ckpt} is an mmpose file, which does not record its model: pass --arch and --joints" in \
        _one_error_line(out)
    code, out = _run(*args, "--arch", "hrnext_tiny", "--joints", "14")
    assert code == 0, out
    assert "pytorch" in out and "ok" in out

    code, out = _run("demo", "--checkpoint", ckpt, "--out", tmp_path / "demo")
    assert code == 2 and f"checkpoint {ckpt} is an mmpose file" in _one_error_line(out)
    # With --arch/--joints it loads, and is refused at once for what it is: a CrowdPose (14-joint) model.
    code, out = _run("demo", "--checkpoint", ckpt, "--arch", "hrnext_tiny", "--joints", "14", "--out",
                     tmp_path / "demo")
    line = _one_error_line(out)
    assert code == 2 and "scores on coco-mini (17 COCO joints)" in line and "has 14 joints (crowdpose)" in line
    assert "trt-eval" in line


def test_demo_refuses_a_crowdpose_checkpoint_before_training_or_export(tiny, tmp_path):
    checkpoint, _ = tiny
    code, out = _run("demo", "--checkpoint", checkpoint, "--out", tmp_path / "demo")
    assert code == 2
    assert f"{checkpoint} has 14 joints (crowdpose): pass a COCO checkpoint" in _one_error_line(out)
    assert not (tmp_path / "demo" / "engines").exists()


def test_late_failures_are_checked_first(tiny, tmp_path, data_dir):
    """--iters 0, an --out or --json below a file: refused before the data is read (the data root
    here does not even exist)."""
    from tests.test_training_loop import CONFIG, tiny_options

    checkpoint, engines = tiny
    missing_data = tmp_path / "no_data_here"
    code, out = _trt_eval(checkpoint, engines, missing_data, "--iters", "0")
    assert code == 2 and "--iters must be positive, got 0" in _one_error_line(out)
    (tmp_path / "a_file").write_text("")
    code, out = _trt_eval(checkpoint, engines, missing_data, "--out", tmp_path / "a_file" / "reports")
    assert code == 2 and "is a file, not a folder" in _one_error_line(out)
    code, out = _trt_eval(checkpoint, engines, missing_data, "--json", tmp_path / "a_file" / "r.json")
    assert code == 2 and "a_file is a file, not a folder" in _one_error_line(out)
    code, out = _run("bench", checkpoint, "--engines", engines, "--json", tmp_path / "a_file" / "r.json")
    assert code == 2 and "a_file is a file, not a folder" in _one_error_line(out)
    # A file given as the output folder itself: the commands' own line (was: click's four-line usage error).
    a_file = tmp_path / "a_file"
    picture = data_dir / "crowdpose-mini" / "images" / "103319.jpg"
    for args, option in [
        (["trt-eval", "--checkpoint", checkpoint, "--dataset", "crowdpose", "--data-root", missing_data], "--out"),
        (["export-engine", checkpoint], "--out"),
        (["predict", picture, "--model", engines / "model.onnx"], "--out"),
        (["demo"], "--out"),
        (["visualize", "--dataset", "crowdpose", "--data-root", data_dir / "crowdpose-mini"], "--out"),
        (["train", CONFIG, "--cfg-options", *tiny_options(data_dir / "coco-mini")], "--work-dir"),
    ]:
        code, out = _run(*args, option, a_file)
        assert code == 2 and "a_file is a file, not a folder" in _one_error_line(out), (args, out)
    assert a_file.read_text() == ""


def test_another_commands_output_folder_is_refused(tiny, tmp_path, data_dir):
    """trt-eval's --out and train's --work-dir in a folder another command made (an export, a
    predict or visualize output, a training run): one line before any work, the folder as it was
    (was: their files mixed in, and that command then refused its own folder)."""
    from tests.test_training_loop import CONFIG, tiny_options

    checkpoint, engines = tiny
    folders = {"predict": ("summary.json", "predict"), "visualize": ("visualize.json", "visualize"),
               "work": ("log.jsonl", "train"), "report": ("trt_eval.json", "trt-eval")}
    for name, (mark, _) in folders.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / mark).write_text("{}")
    for name in ("predict", "visualize", "work"):
        code, out = _trt_eval(checkpoint, engines, tmp_path / "no_data_here", "--out", tmp_path / name)
        mark, owner = folders[name]
        assert code == 2 and _one_error_line(out) == (
            f"error: --out {tmp_path / name} is a {owner} output folder (it holds {mark}): trt-eval would mix its "
            f"files with {owner}'s; choose another --out")
    for folder, owner in ((engines, "export-engine"), (tmp_path / "report", "trt-eval"),
                          (tmp_path / "predict", "predict")):
        before = sorted(p.name for p in Path(folder).iterdir())
        code, out = _run("train", CONFIG, "--work-dir", folder, "--cfg-options", *tiny_options(data_dir / "coco-mini"))
        assert code == 2 and f" {owner} output folder (it holds" in _one_error_line(out) and "--work-dir" in out, out
        assert sorted(p.name for p in Path(folder).iterdir()) == before


@pytest.mark.skipif(nvidia_gpu_present(), reason="this machine has an NVIDIA GPU")
def test_device_cuda_without_a_gpu_is_refused(tiny, tmp_path):
    checkpoint, engines = tiny
    code, out = _trt_eval(checkpoint, engines, tmp_path, "--device", "cuda")
    assert code == 2 and "--device cuda: this machine has no NVIDIA GPU" in _one_error_line(out)
    code, out = _run("bench", checkpoint, "--engines", engines, "--device", "cuda")
    assert code == 2 and "--device cuda: this machine has no NVIDIA GPU" in _one_error_line(out)


@pytest.mark.skipif(unavailable_reason("tensorrt", "cuda") is None, reason="TensorRT runs here")
def test_only_unavailable_backends_is_an_error_not_an_empty_table(tiny, tmp_path):
    checkpoint, engines = tiny
    code, out = _trt_eval(checkpoint, engines, tmp_path / "no_data_here", "--backends", "tensorrt")
    line = _one_error_line(out)
    assert code == 2 and line.startswith("error: none of --backends tensorrt can run here (tensorrt: ")
    code, out = _run("bench", checkpoint, "--engines", engines, "--backends", "tensorrt")
    assert code == 2 and "none of --backends tensorrt can run here" in _one_error_line(out)
    # ONNX Runtime asked for, but the folder has no ONNX file: nothing could be measured either.
    empty = tmp_path / "engines"
    shutil.copytree(engines, empty)
    for f in empty.iterdir():
        f.unlink()
    (empty / "model.engine").write_bytes(b"")
    code, out = _trt_eval(checkpoint, empty, tmp_path, "--backends", "onnxruntime")
    assert code == 2 and "onnxruntime: no ONNX file in the export folder" in _one_error_line(out)


def test_an_export_artifact_given_as_the_checkpoint_is_named_as_such(tiny, tmp_path):
    # The mistake a newcomer makes: the ONNX (or an engine) where export-engine wants the .pth.
    from hrnext_trt.models import read_checkpoint

    _, engines = tiny
    onnx_file = engines / "model.onnx"
    code, out = _run("export-engine", onnx_file, "--out", tmp_path / "out", "--no-engines")
    assert code == 2 and _one_error_line(out) == (
        f"error: cannot read checkpoint {onnx_file}: it is an ONNX model, not a PyTorch checkpoint; pass the .pth "
        "it was exported from (the export folder's manifest.json names it under source_checkpoint)")
    assert not (tmp_path / "out").exists()

    engine = tmp_path / "model_fp16.engine"
    engine.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(HrnextError, match=r"it is a TensorRT engine, not a PyTorch checkpoint; pass the \.pth"):
        read_checkpoint(engine)


def test_checkpoint_read_errors_are_one_safe_line(tmp_path):
    from hrnext_trt.models import load_pose_model, read_checkpoint

    text = tmp_path / "README.pth"
    text.write_text("# not a checkpoint\n" * 50)
    with pytest.raises(HrnextError) as err:
        read_checkpoint(text)
    assert str(err.value) == f"cannot read checkpoint {text}: not a PyTorch checkpoint or truncated"

    results = tmp_path / "results.pth"
    torch.save({"epoch": 3, "AP": 0.5}, results)
    with pytest.raises(HrnextError, match=r"is a PyTorch file but not a model checkpoint: it holds a dict of epoch, AP"):
        read_checkpoint(results)

    from hrnext_trt.models import build_pose_model

    bare = tmp_path / "bare.pth"
    model = build_pose_model("hrnext_tiny", 14)
    torch.save(model.state_dict(), bare)
    with pytest.raises(HrnextError, match=f"checkpoint {bare} is a bare state_dict, which does not record its model: "
                                          "pass --arch and --joints"):
        load_pose_model(bare)
    loaded = load_pose_model(bare, arch="hrnext_tiny", num_joints=14)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("command, option, value, expected", [
    ("trt-eval", "--threads", "0", "--threads must be positive, got 0"),
    ("bench", "--threads", "-3", "--threads must be positive, got -3"),
    ("predict", "--threads", "0", "--threads must be positive, got 0"),
    ("predict", "--det-score-thr", "nan", "--det-score-thr must be a number from 0 to 1, got nan"),
    ("predict", "--det-iou-thr", "1.5", "--det-iou-thr must be a number from 0 to 1, got 1.5"),
    ("predict", "--kpt-thr", "inf", "--kpt-thr must be a number from 0 to 1, got inf"),
    ("predict", "--max-frames", "0", "--max-frames must be positive, got 0"),
    ("predict", "--batch", "0", "--batch must be positive, got 0"),
    ("predict", "--detect-every", "-1", "--detect-every must be positive, got -1"),
    ("export-engine", "--workspace", "nan", "--workspace must be a finite positive number, got nan"),
    ("export-engine", "--int8-budget", "inf", "--int8-budget must be a finite positive number, got inf"),
    ("export-engine", "--calib-images", "0", "--calib-images must be positive, got 0"),
    ("export-engine", "--joints", "-1", "--joints must be positive, got -1"),
])
def test_numeric_options_out_of_range_are_one_line_before_any_work(tiny, tmp_path, command, option, value, expected):
    """NaN passes every `< 0` check and 0 threads meant "the default" to ONNX Runtime but an error to
    PyTorch mid-run: each is refused at the flag, before a file is read or written."""
    checkpoint, engines = tiny
    out = tmp_path / "out"
    args = {"trt-eval": ("--checkpoint", checkpoint, "--engines", engines, "--dataset", "crowdpose", "--data-root",
                         tmp_path / "no_data_here"),
            "bench": (checkpoint, "--engines", engines),
            "predict": (tmp_path / "no_image_here.jpg", "--model", engines / "model.onnx", "--out", out),
            "export-engine": (checkpoint, "--int8", "--out", out)}[command]
    code, printed = _run(command, *args, option, value)
    assert code == 2 and expected in _one_error_line(printed)
    assert not out.exists()


def test_library_configs_refuse_what_the_flags_refuse(tiny, tmp_path):
    from hrnext_trt.benchmark import BenchConfig
    from hrnext_trt.export import ExportConfig
    from hrnext_trt.predict import PredictConfig
    from hrnext_trt.trt_eval import TrtEvalConfig

    checkpoint, engines = tiny
    for threads in (0, -2, 1.5, True):
        for make in (lambda: TrtEvalConfig(checkpoint, engines, "crowdpose", tmp_path, threads=threads),
                     lambda: BenchConfig(str(checkpoint), threads=threads),
                     lambda: PredictConfig("0", engines / "model.onnx", threads=threads)):
            with pytest.raises(HrnextError, match="--threads must be a positive number of threads"):
                make()
    for field in ("det_score_thr", "det_iou_thr", "kpt_thr", "track_iou_thr"):
        for bad in (float("nan"), -0.1, 1.01):
            with pytest.raises(HrnextError, match="must be a number from 0 to 1"):
                PredictConfig("0", engines / "model.onnx", **{field: bad})
    for bad in (float("nan"), float("inf"), 0.0):
        with pytest.raises(HrnextError, match="workspace"):
            ExportConfig(checkpoint, tmp_path / "out", workspace_gb=bad)
        with pytest.raises(HrnextError, match="--int8-budget"):
            ExportConfig(checkpoint, tmp_path / "out", precisions=("fp32", "int8"), int8_budget=bad)


def test_an_input_size_other_than_the_checkpoints_is_refused_not_ignored(tiny, tmp_path):
    # A checkpoint that records its crop size: --input-size (for the paper's files) may only agree with it.
    checkpoint, engines = tiny
    code, out = _trt_eval(checkpoint, engines, tmp_path / "no_data_here", "--input-size", "256x192")
    assert code == 2 and ("input size 256x192 differs from the 64x64 the checkpoint was trained at: leave the input "
                          "size out") in _one_error_line(out)


def test_bench_takes_the_papers_checkpoint(fixtures_dir, fixture_export, tmp_path):
    """bench told users to pass --arch and --joints, which it did not take; with an export folder the
    manifest names the model, as in trt-eval."""
    import json

    ckpt = fixtures_dir / FIXTURE
    common = ("--batch", "2", "--iters", "1", "--warmup", "0", "--device", "cpu", "--threads", "1", "--backends",
              "pytorch,onnxruntime")
    code, out = _run("bench", ckpt, *common, "--input-size", "64x64")
    assert code == 2 and (f"checkpoint {ckpt} is an mmpose file, which does not record its model: pass --arch and "
                          "--joints") in _one_error_line(out)
    code, out = _run("bench", ckpt, *common, "--input-size", "64x64", "--arch", "hrnext_tiny", "--joints", "14",
                     "--json", tmp_path / "given.json")
    assert code == 0, out
    rows = json.loads((tmp_path / "given.json").read_text())["rows"]
    assert [(r["backend"], r["status"]) for r in rows] == [("pytorch", "ok"), ("onnxruntime", "ok")]

    export, _ = fixture_export
    code, out = _run("bench", ckpt, "--engines", export, *common, "--json", tmp_path / "exported.json")
    assert code == 0, out
    report = json.loads((tmp_path / "exported.json").read_text())
    assert report["meta"]["input_size"] == [256, 192]  # the export's, which the file does not record
    code, out = _run("bench", ckpt, "--engines", export, *common, "--input-size", "64x64")
    assert code == 2 and (f"--input-size 64x64 differs from the 256x192 the export {export} was made for: leave "
                          "--input-size out") in _one_error_line(out), out
    assert {(r["backend"], r["precision"]) for r in report["rows"] if r["status"] == "ok"} == {
        ("pytorch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8")}

    code, out = _run("bench", "hrnext_tiny", "--arch", "hrnext_s")
    assert code == 2 and "hrnext_tiny is an arch (its joints come from --dataset): drop them" in _one_error_line(out)


def test_comparisons_of_two_models_and_options_that_would_change_nothing_are_refused(tiny, tmp_path, data_dir):
    import json

    from hrnext_trt.models import write_arch_checkpoint

    checkpoint, engines = tiny  # hrnext_tiny, 14 joints, 64x64
    other = write_arch_checkpoint("hrnext_s", 14, (64, 64), "crowdpose", tmp_path / "hrnext_s.pth")
    # bench: a speed-up of one model over another's export (was: printed, exit 0).
    for model, described in (("hrnext_s", ["--dataset", "crowdpose", "--input-size", "64x64"]), (other, [])):
        code, out = _run("bench", model, *described, "--engines", engines, "--batch", "1", "--iters", "1",
                         "--warmup", "0", "--threads", "1")
        assert code == 2 and "holds hrnext_tiny with 14 joints, the timed model" in _one_error_line(out) \
            and f"compare the checkpoint it was exported from ({checkpoint}" in out, out
    # bench: an arch timed against an export takes the export's crop size, and --input-size must agree with it.
    code, out = _run("bench", "hrnext_tiny", "--dataset", "crowdpose", "--engines", engines, "--batch", "1",
                     "--iters", "1", "--warmup", "0", "--threads", "1", "--json", tmp_path / "arch.json")
    assert code == 0 and json.loads((tmp_path / "arch.json").read_text())["meta"]["input_size"] == [64, 64], out
    code, out = _run("bench", "hrnext_tiny", "--dataset", "crowdpose", "--engines", engines, "--input-size", "128x96")
    assert code == 2 and (f"--input-size 128x96 differs from the 64x64 the export {engines} was made for: leave "
                          "--input-size out") in _one_error_line(out), out
    # trt-eval: a folder copied without its manifest is checked by its ONNX metadata.
    copied = tmp_path / "copied"
    copied.mkdir()
    shutil.copy(engines / "model.onnx", copied)
    code, out = _trt_eval(other, copied, data_dir / "crowdpose-mini")
    assert code == 2 and f"{copied / 'model.onnx'} holds hrnext_tiny with 14 joints, --checkpoint {other} is " \
                         "hrnext_s with 14" in _one_error_line(out)
    # ... also where the checkpoint records no model and --arch says it (was: compared, "speed-up", exit 0).
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(other, weights_only=True)["state_dict"], bare)
    code, out = _trt_eval(bare, copied, data_dir / "crowdpose-mini", "--arch", "hrnext_s", "--joints", "14")
    assert code == 2 and f"holds hrnext_tiny with 14 joints, --checkpoint {bare} is hrnext_s with 14" \
        in _one_error_line(out), out
    crowd = ["--dataset", "crowdpose", "--data-root", data_dir / "crowdpose-mini"]
    for args, needle in [
        (["--engines", engines, "--out", engines], f"--out {engines} is the export folder"),
        (["--engines", engines, "--out", engines / "reports"], f"is inside the export folder {engines}"),
        (["--engines", engines, "--json", engines / "r.json"], f"--json {engines / 'r.json'} is inside the export"),
        (["--engines", engines, "--other-checkpoint"], "--other-checkpoint compares a --checkpoint other than"),
        (["--checkpoint", checkpoint, "--boxes", "gt", "--det-file", tmp_path / "dets.json"],
         "--det-file gives detector boxes and --boxes gt scores ground-truth boxes: drop one"),
        (["--engines", copied, "--input-size", "128x128"],
         f"--input-size 128x128 differs from the 64x64 the export {copied} was made for: leave --input-size out"),
    ]:
        code, out = _run("trt-eval", *args, *crowd)
        assert code == 2 and needle in _one_error_line(out), out
    code, out = _run("bench", checkpoint, "--engines", engines, "--json", engines / "bench.json")
    assert code == 2 and "is inside the export folder" in _one_error_line(out), out
    assert sorted(p.name for p in engines.iterdir() if p.name.startswith(("results", "trt_eval"))) == []


def test_a_batch_outside_the_engines_profile_matters_only_where_they_run(fixture_export, data_dir, tmp_path):
    import json

    export, printed = fixture_export  # engines of profile 1..8, where a builder is installed
    if not list(export.glob("*.engine")):
        pytest.skip("no engine in the fixture export: no TensorRT builder installed here")
    hint = next(line.strip() for line in printed.splitlines() if line.strip().startswith("hrnext-trt trt-eval"))
    assert hint.endswith("--batch 8")  # the printed command runs as printed
    code, out = _run("trt-eval", "--engines", export, "--dataset", "crowdpose", "--data-root",
                     data_dir / "crowdpose-mini", "--backends", "onnxruntime,tensorrt", "--batch", "32", "--iters", "1",
                     "--warmup", "0", "--threads", "1", "--json", tmp_path / "r.json")
    reason = unavailable_reason("tensorrt", "cuda")
    if reason:  # the engine rows say why they did not run; the ONNX rows are measured (was: the whole run refused)
        assert code == 0, out
        rows = json.loads((tmp_path / "r.json").read_text())["rows"]
        assert {r["status"] for r in rows if r["backend"] == "tensorrt"} == {"unavailable"}
        assert {r["status"] for r in rows if r["backend"] == "onnxruntime"} == {"ok"}
    else:
        assert code == 2 and "outside the engine's batch profile 1..8" in out and "--batch 8" in out


def test_options_that_would_change_nothing_are_refused_in_one_line(fixtures_dir, tiny, tmp_path):
    from hrnext_trt.contract import installed_builders

    checkpoint, engines = tiny
    paper = [fixtures_dir / FIXTURE, "--arch", "hrnext_tiny", "--joints", "14", "--out", tmp_path / "exp"]
    cases = [
        (["export-engine", *paper, "--calib-method", "max"],
         "--calib-method max chooses INT8's calibration: add --int8"),
        (["export-engine", *paper, "--int8", "--sensitivity-level", "part"],
         "--sensitivity-level part cuts the groups of a sensitivity table or a precision plan"),
        (["bench", checkpoint, "--engines", engines, "--export-precisions", "fp32,int8"],
         "--export-precisions sets what a temporary export makes, and --engines times the folder's files"),
        (["bench", "hrnext_tiny", "--backends", "onnxruntime", "--compile"],
         "--torch-precisions and --compile set the PyTorch rows, and --backends has no pytorch"),
        (["bench", checkpoint, "--dataset", "mpii"], "--dataset picks the head's joints of an arch name"),
        (["demo", "--arch", "hrnext_s", "--joints", "16", "--out", tmp_path / "demo"],
         "--arch and --joints describe a --checkpoint that does not record its model, and none is given"),
    ]
    if "tensorrt" not in installed_builders():  # asked for by name, and not there: an error, not a note
        cases.append((["export-engine", *paper, "--builder", "tensorrt"],
                      "--builder tensorrt: TensorRT is not installed"))
    for args, needle in cases:
        code, out = _run(*args)
        assert code == 2 and needle in out.strip().splitlines()[-1], out
    assert not (tmp_path / "exp").exists() and not (tmp_path / "demo").exists()


def test_a_pycuda_that_does_not_load_beside_a_gpu_is_one_line(gpu_machine_with_pycuda):
    """pycuda installed but not loadable (libcuda.so.1 off the loader path, built for another numpy)
    beside a GPU was "no GPU": export-engine then failed with a TypeError traceback after its ONNX
    stage, and an engine said no GPU was visible."""
    from hrnext_trt.engines.cuda_device import gpu_info

    gpu_machine_with_pycuda('raise ImportError("libcuda.so.1: cannot open shared object file: No such file")')
    with pytest.raises(HrnextError, match=r"^pycuda cannot be loaded \(libcuda\.so\.1: cannot open shared object "
                                          r"file: No such file\): reinstall it against this machine's CUDA driver"):
        gpu_info()
