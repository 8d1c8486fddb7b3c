"""trt-eval: PyTorch and ONNX Runtime rows on the same boxes, reports that parse, one-line errors."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.models import write_arch_checkpoint
from hrnext_trt.cli import main
from hrnext_trt.errors import HrnextError
from hrnext_trt.compare import CPU_LOW_PRECISION_FOOTNOTE, CPU_LOW_PRECISION_NOTE
from hrnext_trt.trt_eval import TrtEvalConfig, run_trt_eval

INPUT_SIZE = (64, 64)


def make_tiny_export(tmp_path_factory):
    """(checkpoint, export folder) of an untrained hrnext_tiny at 64x64, made once per test process."""
    from hrnext_trt.export import ExportConfig, export_artifacts

    base = tmp_path_factory.getbasetemp() / "tiny_export"
    checkpoint, engines = base / "hrnext_tiny.pth", base / "engines"
    if not (engines / "manifest.json").is_file():
        write_arch_checkpoint("hrnext_tiny", 14, INPUT_SIZE, "crowdpose", checkpoint)
        export_artifacts(ExportConfig(checkpoint, engines, verify_images=4, build_engines=False))  # ONNX rows only
    return checkpoint, engines


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    return make_tiny_export(tmp_path_factory)


def _config(checkpoint, engines, data_dir, **kw) -> TrtEvalConfig:
    kw = {"backends": ("pytorch", "onnxruntime", "tensorrt"), "batch": 4, "iters": 2, "warmup": 1,
          "device": "cpu", "threads": 1, "progress": False, **kw}
    return TrtEvalConfig(checkpoint, engines, "crowdpose", data_dir / "crowdpose-mini", **kw)


def test_fp32_onnx_row_equals_pytorch_and_reports_parse(tiny_export, data_dir, tmp_path):
    checkpoint, engines = tiny_export
    report = run_trt_eval(_config(checkpoint, engines, data_dir, out=tmp_path / "out", json=tmp_path / "copy.json"))
    rows = {(r["backend"], r["precision"]): r for r in report.rows}
    assert list(rows) == [("pytorch", "fp32"), ("onnxruntime", "fp32"), ("tensorrt", "-")]
    torch_row, onnx_row, trt_row = rows.values()

    # Same boxes, same pipeline: the FP32 ONNX predicts what PyTorch predicts.
    assert onnx_row["AP"] == pytest.approx(torch_row["AP"], abs=1e-3)
    assert onnx_row["delta_AP"] == pytest.approx(onnx_row["AP"] - torch_row["AP"]) and torch_row["delta_AP"] == 0
    ref, got = (json.loads(open(r["results"]).read()) for r in (torch_row, onnx_row))
    assert len(ref) == len(got) > 0 and [r["image_id"] for r in ref] == [r["image_id"] for r in got]
    ref_kpt, got_kpt = (np.array([r["keypoints"] for r in res]).reshape(len(res), -1, 3) for res in (ref, got))
    assert (np.abs(ref_kpt[..., :2] - got_kpt[..., :2]) < 0.5).mean() > 0.98
    # crowdpose-mini's images are all of medium crowding: easy and hard have nobody to score. The
    # COCO tools say -1; the rows say nothing (was -1.000 in every report, read as a score).
    for key in ("AP_medium", "AR"):
        assert isinstance(torch_row[key], float) and isinstance(onnx_row[key], float)
    assert torch_row["AP_easy"] is torch_row["AP_hard"] is onnx_row["AP_easy"] is None
    assert "AP_easy, AP_hard: - where the split has no person of that category (the COCO tools' -1" in \
        report.table() and "-1.000" not in report.table()

    for row in (torch_row, onnx_row):
        assert row["status"] == "ok" and row["device"] == "cpu"
        for key in ("p50_ms", "p95_ms", "images_per_s", "e2e_persons_per_s", "speedup"):
            assert row[key] > 0, key
        assert row["p95_ms"] >= row["p50_ms"] and row["latency"]["batch"] == 4
    assert torch_row["speedup"] == 1.0
    assert trt_row["status"] == "unavailable" and trt_row["notes"] and trt_row["AP"] is None

    table = report.table()
    assert "AP easy" in table and "speed-up" in table and "latency: model-only" in table
    out = tmp_path / "out"
    data = json.loads((out / "trt_eval.json").read_text())
    assert data == json.loads((tmp_path / "copy.json").read_text())
    assert [(r["backend"], r["AP"]) for r in data["rows"]] == [(r["backend"], r["AP"]) for r in report.rows]
    assert data["meta"]["persons"] == 6 and data["meta"]["input_size"] == list(INPUT_SIZE)
    with (out / "trt_eval.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["backend"] for r in csv_rows] == ["pytorch", "onnxruntime", "tensorrt"]
    assert float(csv_rows[1]["p50_ms"]) == pytest.approx(onnx_row["p50_ms"])
    md_rows = [line for line in (out / "trt_eval.md").read_text().splitlines() if line.startswith("| ")]
    assert len(md_rows) == 2 + 3 and md_rows[0].startswith("| backend | precision | device | AP |")
    assert (out / "trt_eval.png").read_bytes()[:4] == b"\x89PNG"


def test_onnx_folder_without_manifest_is_read_by_file_names(tiny_export, data_dir, tmp_path):
    checkpoint, engines = tiny_export
    folder = tmp_path / "copied"
    folder.mkdir()
    import onnx

    shutil.copy(engines / "model.onnx", folder / "model.onnx")
    # A file that records no precision is labelled by its name (INT8 here) ...
    model = onnx.load(str(engines / "model.onnx"))
    for prop in model.metadata_props:
        if prop.key == "hrnext_trt":
            prop.value = json.dumps({k: v for k, v in json.loads(prop.value).items() if k != "precision"})
    onnx.save(model, str(folder / "model_int8.onnx"))
    # ... one that records it, by its own word (a renamed FP32 file stays FP32).
    shutil.copy(engines / "model.onnx", folder / "model_fp16.onnx")
    out = tmp_path / "report"
    report = run_trt_eval(_config(checkpoint, folder, data_dir, backends=("onnxruntime",), flip_test=False, out=out))
    assert [(r["backend"], r["precision"], r["file"]) for r in report.rows] == [
        ("onnxruntime", "fp32", "model.onnx"), ("onnxruntime", "fp32", "model_fp16.onnx"),
        ("onnxruntime", "int8", "model_int8.onnx")]
    assert report.rows[0]["notes"] == "" and report.rows[2]["notes"] == CPU_LOW_PRECISION_NOTE
    assert report.rows[0]["delta_AP"] is None  # no PyTorch row asked for, nothing to compare with
    assert CPU_LOW_PRECISION_FOOTNOTE in report.footnotes
    # Two rows of one backend and precision: each keeps its results file (was: the second overwrote the
    # first's, whose row said null), named by absolute path, and the table shows which file is which.
    results = [r["results"] for r in report.rows]
    assert results == [str((out / name).resolve()) for name in ("results_onnxruntime_fp32.json",
                                                                  "results_onnxruntime_fp32_model_fp16.json",
                                                                  "results_onnxruntime_int8.json")]
    assert all(json.loads(open(path).read()) for path in results)
    assert [line.split()[2] for line in report.table().splitlines()[4:7]] == ["model.onnx", "model_fp16.onnx",
                                                                              "model_int8.onnx"]
    # Run again without that file: its results, which the last report listed, go with it.
    (folder / "model_fp16.onnx").unlink()
    run_trt_eval(_config(checkpoint, folder, data_dir, backends=("onnxruntime",), flip_test=False, out=out))
    assert sorted(p.name for p in out.glob("results_*.json")) == ["results_onnxruntime_fp32.json",
                                                                   "results_onnxruntime_int8.json"]


def _one_line_error(config) -> str:
    with pytest.raises(HrnextError) as err:
        run_trt_eval(config)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_missing_engine_file_is_one_clear_line(tiny_export, data_dir, tmp_path):
    checkpoint, engines = tiny_export
    folder = tmp_path / "engines"
    shutil.copytree(engines, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"]["model_fp16.engine"] = {"kind": "tensorrt", "precision": "fp16", "size": 1, "sha256": "0"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    message = _one_line_error(_config(checkpoint, folder, data_dir))
    assert "model_fp16.engine is listed in" in message and "missing" in message

    result = CliRunner().invoke(main, ["trt-eval", "--checkpoint", str(checkpoint), "--engines", str(folder),
                                       "--dataset", "crowdpose", "--data-root", str(data_dir / "crowdpose-mini")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {message}"]

    message = _one_line_error(_config(checkpoint, tmp_path / "nowhere", data_dir))
    assert "engines folder" in message and "not found" in message


def test_engine_this_machine_cannot_run_is_a_row_beside_the_others(tiny_export, data_dir, tmp_path, monkeypatch):
    # An engine built for other GPUs or by another version (TensorRT for RTX's, built for RTX GPUs,
    # on an H100) must not stop the comparison: its row says why, the other rows are measured.
    from hrnext_trt.manifest import sha256_file

    checkpoint, engines = tiny_export
    folder = tmp_path / "engines"
    shutil.copytree(engines, folder)
    engine = folder / "model_fp16.engine"
    engine.write_bytes(b"an engine of another TensorRT for RTX")  # refused before it is ever deserialised
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"][engine.name] = {"kind": "tensorrt", "precision": "fp16", "size": engine.stat().st_size,
                                          "sha256": sha256_file(engine), "builder": "tensorrt-rtx",
                                          "builder_version": "1.0.0.1", "targets": ["8.9"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    # This machine has no GPU: say the runner's backend is there, so activation reaches the engine's
    # own checks, which run before any GPU call.
    monkeypatch.setattr("hrnext_trt.runners.base.unavailable_reason", lambda backend, device: None)
    report = run_trt_eval(_config(checkpoint, folder, data_dir, flip_test=False))
    rows = {(r["backend"], r["precision"]): r for r in report.rows}
    assert list(rows) == [("pytorch", "fp32"), ("onnxruntime", "fp32"), ("tensorrt", "fp16")]
    assert rows["pytorch", "fp32"]["status"] == rows["onnxruntime", "fp32"]["status"] == "ok"
    trt_row = rows["tensorrt", "fp16"]
    assert trt_row["status"] == "unavailable" and trt_row["AP"] is None
    assert "TensorRT for RTX" in trt_row["notes"] and "\n" not in trt_row["notes"]


def test_export_for_another_input_shape_is_one_clear_line(tiny_export, data_dir, tmp_path):
    _, engines = tiny_export
    other = write_arch_checkpoint("hrnext_tiny", 14, (128, 96), "crowdpose", tmp_path / "other.pth")
    message = _one_line_error(_config(other, engines, data_dir))
    assert "model.onnx was exported for 64x64 crops but the checkpoint takes 128x96" in message


def test_trt_eval_command_prints_the_table_and_writes_reports(tiny_export, data_dir, tmp_path):
    checkpoint, engines = tiny_export
    result = CliRunner().invoke(main, ["trt-eval", "--checkpoint", str(checkpoint), "--engines", str(engines),
                                       "--dataset", "crowdpose", "--data-root", str(data_dir / "crowdpose-mini"),
                                       "--backends", "onnxruntime", "--batch", "2", "--no-flip", "--iters", "1",
                                       "--warmup", "0", "--device", "cpu", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("trt-eval: crowdpose test (det boxes, 6 persons, 2 images), input 64x64, batch 2")
    assert any(line.startswith("onnxruntime  fp32") for line in lines)
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["flip_test"] is False


def test_flip_test_follows_the_checkpoint_recipe_unless_asked(tmp_path, data_dir):
    import torch

    from hrnext_trt.models import build_pose_model, make_checkpoint

    model = build_pose_model("hrnext_tiny", 14)
    no_flip = tmp_path / "trained_without_mirrors.pth"
    torch.save(make_checkpoint(model, INPUT_SIZE, "crowdpose", config={"runtime": {"flip_test": False}}), no_flip)
    paper = write_arch_checkpoint("hrnext_tiny", 14, INPUT_SIZE, "crowdpose", tmp_path / "no_recipe.pth")
    flips = {}
    for name, checkpoint, asked in (("recipe off", no_flip, None), ("no recipe", paper, None),
                                    ("asked on", no_flip, True)):
        report = run_trt_eval(_config(checkpoint, None, data_dir, backends=("pytorch",), flip_test=asked))
        flips[name] = report.meta["flip_test"]
    assert flips == {"recipe off": False, "no recipe": True, "asked on": True}


def test_an_export_alone_is_scored_as_with_its_checkpoint(tmp_path, data_dir):
    # trt-eval --engines without --checkpoint: the PyTorch row is the manifest's source checkpoint
    # while it is there unchanged, and the recipe's flip test holds either way, so an engine's AP
    # does not depend on whether the checkpoint was passed.
    import torch

    from hrnext_trt.export import ExportConfig, export_artifacts
    from hrnext_trt.models import build_pose_model, make_checkpoint

    source = tmp_path / "trained_without_mirrors.pth"
    torch.manual_seed(1)
    model = build_pose_model("hrnext_tiny", 14)
    torch.save(make_checkpoint(model, INPUT_SIZE, "crowdpose", config={"runtime": {"flip_test": False}}), source)
    engines = tmp_path / "engines"
    export_artifacts(ExportConfig(source, engines, verify_images=2, build_engines=False))
    assert json.loads((engines / "manifest.json").read_text())["flip_test"] is False

    def onnx_results(report):
        row = next(r for r in report.rows if r["backend"] == "onnxruntime")
        return json.loads(open(row["results"]).read())

    given = run_trt_eval(_config(source, engines, data_dir, backends=("pytorch", "onnxruntime"),
                                 out=tmp_path / "given"))
    alone = run_trt_eval(_config(None, engines, data_dir, backends=("pytorch", "onnxruntime"),
                                 out=tmp_path / "alone"))
    assert [(r["backend"], r["status"]) for r in alone.rows] == [("pytorch", "ok"), ("onnxruntime", "ok")]
    assert alone.meta["checkpoint"] == str(source.resolve()) and alone.meta["flip_test"] is False
    assert alone.meta["checkpoint_is_exported_one"] is True
    assert any(f"the PyTorch row is {source.resolve()}, the checkpoint manifest.json records" in note
               for note in alone.footnotes)
    assert [r["AP"] for r in alone.rows] == [r["AP"] for r in given.rows]

    moved = source.rename(tmp_path / "elsewhere.pth")
    gone = run_trt_eval(_config(None, engines, data_dir, backends=("pytorch", "onnxruntime"),
                                out=tmp_path / "gone"))
    assert [(r["backend"], r["status"]) for r in gone.rows] == [("pytorch", "unavailable"), ("onnxruntime", "ok")]
    assert gone.rows[0]["notes"] == (f"no --checkpoint, and the export's source checkpoint {source.resolve()} is "
                                     "not on this machine: pass --checkpoint")
    assert gone.meta["flip_test"] is False and onnx_results(gone) == onnx_results(given)
    assert gone.rows[1]["delta_AP"] is None  # nothing to compare with
    # The ONNX file copied alone (no manifest): its metadata records the recipe's choice (was: flip
    # test on, and the demo's model scored AP 0.350 instead of 0.520).
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "model.onnx").write_bytes((engines / "model.onnx").read_bytes())
    alone_file = run_trt_eval(_config(None, copied, data_dir, backends=("onnxruntime",), out=tmp_path / "copy"))
    assert alone_file.meta["flip_test"] is False and onnx_results(alone_file) == onnx_results(given)
    assert not any("flip test on (the paper's protocol)" in note for note in alone_file.footnotes)
    # A file of an export that did not record it: flip test, the paper's protocol, and a footnote says so.
    import onnx

    older = onnx.load(str(copied / "model.onnx"))
    entry = next(p for p in older.metadata_props if p.key == "hrnext_trt")
    entry.value = json.dumps({k: v for k, v in json.loads(entry.value).items() if k != "flip_test"})
    onnx.save(older, str(copied / "model.onnx"))
    unknown = run_trt_eval(_config(None, copied, data_dir, backends=("onnxruntime",)))
    assert unknown.meta["flip_test"] is True
    assert any("flip test on (the paper's protocol)" in note and "--no-flip" in note for note in unknown.footnotes)

    torch.save(make_checkpoint(build_pose_model("hrnext_tiny", 14), INPUT_SIZE, "crowdpose"), source)  # retrained
    changed = run_trt_eval(_config(None, engines, data_dir, backends=("pytorch", "onnxruntime")))
    assert changed.rows[0]["status"] == "unavailable" and "has changed since the export" in changed.rows[0]["notes"]
    assert moved.is_file()


def test_a_model_of_other_joints_than_the_dataset_is_refused_before_any_work(tiny_export, data_dir, tmp_path):
    checkpoint, engines = tiny_export  # 14 CrowdPose joints
    for backends in (("pytorch", "onnxruntime"), ("onnxruntime",)):  # the model's head, or the manifest's
        config = TrtEvalConfig(checkpoint, engines, "coco", data_dir / "coco-mini", backends=backends, batch=4,
                               device="cpu", progress=False, out=tmp_path / "out")
        assert _one_line_error(config).startswith("the model predicts 14 joints but coco has 17 (17: coco, ")
    assert not (tmp_path / "out").exists()


def test_a_rerun_removes_its_own_stale_results_and_nobody_elses(tiny_export, data_dir, tmp_path):
    checkpoint, engines = tiny_export
    out = tmp_path / "reports"
    run_trt_eval(_config(checkpoint, engines, data_dir, out=out, backends=("pytorch", "onnxruntime"), iters=1))
    assert {p.name for p in out.glob("results_*.json")} == {"results_pytorch_fp32.json",
                                                              "results_onnxruntime_fp32.json"}
    for mine in ("results_mine.json", "results_pytorch_fp32_backup.json"):  # the user's own files, in the folder
        (out / mine).write_text("[]")
    run_trt_eval(_config(checkpoint, engines, data_dir, out=out, backends=("pytorch",), iters=1))
    # The ONNX Runtime results of the first run would be read as this run's: gone; the user's files stay.
    assert {p.name for p in out.glob("results_*.json")} == {"results_pytorch_fp32.json", "results_mine.json",
                                                              "results_pytorch_fp32_backup.json"}
    assert (out / "results_mine.json").read_text() == "[]"
