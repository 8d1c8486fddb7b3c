"""The demo's stages with tiny settings (the full demo is minutes of training: not a CI test)."""

from __future__ import annotations

import json
import logging

from hrnext_trt.models import write_arch_checkpoint
from hrnext_trt.demo import OWN_DATA_NOTE, DemoConfig, demo_preset, run_demo


def test_demo_preset_trains_on_the_bundled_coco_sample():
    from hrnext_trt.training import load_config

    config = load_config(demo_preset(), ["runtime.device=cpu"])
    assert config.dataset == "coco" and config.data.train.root == "bundled:coco-mini"
    assert config.data.train.split == "train" and config.runtime.device == "cpu"


def test_demo_exports_compares_and_draws_from_a_checkpoint(tmp_path, caplog):
    checkpoint = write_arch_checkpoint("hrnext_tiny", 17, (64, 64), "coco", tmp_path / "coco_tiny.pth")
    out = tmp_path / "demo"
    caplog.set_level(logging.INFO, logger="hrnext_trt")
    report = run_demo(DemoConfig(out=out, checkpoint=checkpoint, precisions=("fp32",), device="cpu", threads=1,
                                 batch=16, iters=1, warmup=0, pose_images=2))
    lines = [record.getMessage() for record in caplog.records if record.name == "hrnext_trt.demo"]

    banners = [line.strip() for line in lines if line.strip().startswith("== [")]
    assert [b[:8] for b in banners] == ["== [1/5]", "== [2/5]", "== [3/5]", "== [4/5]", "== [5/5]"]
    assert "training skipped" in banners[0] and "trt-eval" in banners[2]
    assert [(r["backend"], r["precision"], r["status"]) for r in report.rows] == [
        ("pytorch", "fp32", "ok"), ("onnxruntime", "fp32", "ok"), ("tensorrt", "-", "unavailable")]
    assert OWN_DATA_NOTE in report.footnotes and OWN_DATA_NOTE in report.table()

    saved = json.loads((out / "report" / "trt_eval.json").read_text())
    assert saved["meta"]["split"] == "train" and saved["meta"]["boxes"] == "gt"
    assert saved["meta"]["images"] == 80 and OWN_DATA_NOTE in saved["footnotes"]
    assert (out / "engines" / "manifest.json").is_file() and (out / "report" / "trt_eval.png").is_file()
    assert len(list((out / "poses").glob("*.png"))) == 2

    # The last stage: predict on a bundled picture and a clip, the files named in the log.
    image_results = json.loads((out / "predict" / "image" / "results.json").read_text())
    assert image_results and all(len(r["keypoints"]) == 3 * 17 for r in image_results)
    assert (out / "predict" / "image" / "003799.jpg").is_file()
    frames = [json.loads(line) for line in (out / "predict" / "clip" / "clip.jsonl").read_text().splitlines()]
    assert len(frames) == 24 and sum(len(f["people"]) for f in frames) > 0
    assert str(out / "predict" / "clip" / "clip.mp4") in lines[-2]


def test_demo_command_checks_its_options_in_one_line():
    from click.testing import CliRunner

    from hrnext_trt.cli import main

    result = CliRunner().invoke(main, ["demo", "--train-minutes", "0"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --train-minutes must be positive, got 0.0"
