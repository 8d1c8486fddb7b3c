"""MPII end to end on mpii-mini: convert, train a few iterations, export FP32 and FP16, and
trt-eval every backend this machine has on the PCKh protocol (hrnext_tiny at 64x64: seconds);
PoseTrack's trt-eval rows on posetrack18-mini's detector boxes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.converters import convert_mpii, write_coco_file
from hrnext_trt.models import read_checkpoint, write_arch_checkpoint
from hrnext_trt.training import load_config, read_log, train
from hrnext_trt.trt_eval import FIELDS, TrtEvalConfig, run_trt_eval
from tests.mini_roots import posetrack_root

REPO = Path(__file__).resolve().parents[1]
PCKH_KEYS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1")


@pytest.fixture(scope="module")
def mpii_mini(data_dir, tmp_path_factory) -> Path:
    """mpii-mini's five people as both splits (the run fits them and is scored on them)."""
    root = tmp_path_factory.mktemp("data") / "mpii"
    data = convert_mpii(data_dir / "mpii-mini" / "annot" / "valid.json")
    for split in ("train", "val"):
        write_coco_file(data, root / "annotations" / f"mpii_{split}.json")
    (root / "images").symlink_to(data_dir / "mpii-mini" / "images")
    return root


def test_train_export_and_trt_eval_on_mpii_mini(mpii_mini, tmp_path, caplog):
    options = [f"{k}={v}" for k, v in {
        "model.arch": "hrnext_tiny", "model.activation_checkpointing": "false", "model.sync_bn": "false",
        "data.input_size": "[64,64]", "data.batch_size": "4", "data.num_workers": "0",
        "data.train.root": str(mpii_mini), "data.val.root": str(mpii_mini), "schedule.epochs": "2",
        "schedule.warmup_iters": "1", "runtime.device": "cpu", "runtime.eval_interval": "1",
        "runtime.log_interval": "1"}.items()]
    cfg = load_config(REPO / "train" / "hrnext_s_mpii_256x256.yaml", options)
    with caplog.at_level("INFO", logger="hrnext_trt"):
        best = train(cfg, tmp_path / "work", progress=False)
    # PCKh is percent, as the MPII toolkit prints it: said with its unit (was "Mean 12.5000", read as a fraction).
    assert re.search(r"epoch 1: Head \d+\.\d\d %, .* Mean \d+\.\d\d %", caplog.text), caplog.text
    assert re.search(r"new best Mean \d+\.\d\d % -> ", caplog.text), caplog.text
    ckpt = read_checkpoint(best)
    assert (ckpt["dataset"], ckpt["num_joints"], ckpt["input_size"]) == ("mpii", 16, [64, 64])
    val = read_log(tmp_path / "work", "val")
    assert len(val) == 2 and all(0 <= r[k] <= 100 for r in val for k in PCKH_KEYS)
    assert ckpt["best_ap"] == max(r["Mean"] for r in val)  # the best checkpoint is the best PCKh Mean

    engines = tmp_path / "engines"
    # FP16 beside FP32 (INT8 calibration, the slowest step, is the export tests' business); the
    # held-out check crops come from MPII's train split.
    result = CliRunner().invoke(main, ["export-engine", str(best), "--out", str(engines), "--fp16",
                                       "--calib-data", str(mpii_mini), "--calib-dataset", "mpii",
                                       "--verify-images", "2", "--no-engines"])  # engine builds: test_engines_build
    assert result.exit_code == 0, result.output

    report = run_trt_eval(TrtEvalConfig(best, engines, "mpii", mpii_mini, batch=4, iters=2, warmup=1, device="cpu",
                                        threads=1, progress=False, out=tmp_path / "report"))
    rows = {(r["backend"], r["precision"]): r for r in report.rows}
    assert {("pytorch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16")} <= set(rows)
    torch_row, onnx_row = rows[("pytorch", "fp32")], rows[("onnxruntime", "fp32")]
    assert torch_row["status"] == onnx_row["status"] == "ok" and report.meta["metric"] == "Mean"
    assert report.meta["persons"] == 5 and report.meta["boxes"] == "gt"
    assert {r["metric"] for r in report.rows} == {"Mean"}  # the unavailable TensorRT row too (was "AP")
    for row in (r for r in report.rows if r["status"] == "ok"):
        assert all(0 <= row[FIELDS.get(k, k)] <= 100 for k in PCKH_KEYS) and row["p50_ms"] > 0
        assert row["delta_AP"] == pytest.approx(row["Mean"] - torch_row["Mean"])
    results, onnx_results = (json.loads(Path(r["results"]).read_text()) for r in (torch_row, onnx_row))
    assert sorted(r["annotation_id"] for r in results) == [1, 2, 3, 4, 5]  # one per person, no NMS
    # Same crops, same decoding: the FP32 ONNX places the joints where PyTorch does (a nearly
    # untrained model has flat heatmaps, so a rare argmax may flip: most joints, not all).
    ref, got = (np.array([r["keypoints"] for r in res]).reshape(5, 16, 3) for res in (results, onnx_results))
    assert [r["annotation_id"] for r in results] == [r["annotation_id"] for r in onnx_results]
    assert (np.abs(ref[..., :2] - got[..., :2]).max(-1) < 0.5).mean() > 0.9
    assert "| backend | precision | device | Head | Shoulder |" in (tmp_path / "report" / "trt_eval.md").read_text()
    assert "dMean" in report.table()
    assert "accuracy columns are percent (0 to 100), as the MPII toolkit's PCKh is printed; dMean is in " \
           "percentage points" in report.table()
    assert "decode; no NMS: one pose per annotated person" in report.table()  # was: "... decode, NMS"


def test_trt_eval_scores_posetrack_detector_boxes_with_poseval_metrics(data_dir, tmp_path):
    root = posetrack_root(data_dir, tmp_path)
    checkpoint = write_arch_checkpoint("hrnext_tiny", 17, (64, 64), "posetrack", tmp_path / "tiny.pth")
    report = run_trt_eval(TrtEvalConfig(checkpoint, None, "posetrack", root, backends=("pytorch",), batch=32,
                                        iters=1, warmup=0, device="cpu", threads=1, progress=False))
    (row,) = report.rows
    dets = json.loads((root / "dets" / "human_detection.json").read_text())
    persons = sum(d["score"] >= 0.4 and d["bbox"][2] > 0 and d["bbox"][3] > 0 for d in dets)  # protocol's threshold
    assert report.meta["boxes"] == "det" and report.meta["persons"] == persons and report.meta["metric"] == "mAP"
    assert row["status"] == "ok" and 0 <= row["mAP"] < 100 and row["delta_AP"] == 0
    assert all(0 <= row[k] <= 100 for k in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"))
    assert "mAP" in report.table() and "dmAP" in report.table()
    assert "accuracy columns are percent (0 to 100), as poseval's AP is printed" in report.table()


def test_a_group_without_labelled_joints_is_no_score(data_dir, tmp_path):
    """poseval gives NaN for a joint group nobody labelled: the row says "-" (JSON null) with a
    footnote, and the other groups and mAP stand (was: NaN in the table and a bare NaN in the JSON)."""
    root = posetrack_root(data_dir, tmp_path)
    ann_file = root / "annotations" / "posetrack18_val.json"
    data = json.loads(ann_file.read_text())
    for ann in data["annotations"]:
        for joint in (15, 16):  # the ankles
            ann["keypoints"][3 * joint:3 * joint + 3] = [0, 0, 0]
    ann_file.write_text(json.dumps(data))
    checkpoint = write_arch_checkpoint("hrnext_tiny", 17, (64, 64), "posetrack", tmp_path / "tiny.pth")
    out = tmp_path / "report"
    report = run_trt_eval(TrtEvalConfig(checkpoint, None, "posetrack", root, backends=("pytorch",), batch=32,
                                        iters=1, warmup=0, device="cpu", threads=1, progress=False, out=out))
    (row,) = report.rows
    assert row["Ankle"] is None and 0 <= row["Knee"] <= 100 and 0 <= row["mAP"] <= 100
    assert "Ankle: - where the split has no labelled joint of that group (NaN, not a score)" in report.table()
    saved = json.loads((out / "trt_eval.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert saved["rows"][0]["Ankle"] is None


@pytest.mark.parametrize("name", ["mpii", "posetrack"])
def test_ground_truth_heatmaps_through_the_pipeline_score_100(name, data_dir, tmp_path):
    """Crops, flip test, decoding, back-projection and scoring agree: the annotations' own heatmaps
    score PCKh 100 (MPII, its center/scale crops) and mAP 100 (PoseTrack, its boxes)."""
    from hrnext_trt.data import load_dataset
    from hrnext_trt.evaluation import evaluate_results
    from hrnext_trt.pipeline import predict
    from tests.mini_roots import mpii_root
    from tests.test_pipeline import INPUT, _oracle_infer

    root = (mpii_root if name == "mpii" else posetrack_root)(data_dir, tmp_path)
    dataset = load_dataset(name, root, "val", boxes="gt")
    infer, _ = _oracle_infer(dataset)
    results = predict(dataset, infer, INPUT, batch_size=4, flip_test=True, progress=False)
    metrics = evaluate_results(name, dataset.ann_file, results)
    key = "Mean" if name == "mpii" else "mAP"
    assert metrics[key] == 100.0, metrics
