"""The demo's stages with tiny settings (the full demo is minutes of training: not a CI test)."""

from __future__ import annotations

import json
import logging

import pytest

from hrnext_trt.contract import installed_builders, unavailable_reason
from hrnext_trt.demo import OWN_DATA_NOTE, DemoConfig, TrainingProgress, demo_preset, run_demo
from hrnext_trt.errors import HrnextError
from hrnext_trt.models import write_arch_checkpoint
from hrnext_trt.training.checkpointing import find_latest_checkpoint

# The preset shrunk to seconds: 64x48 crops, one epoch (10 iterations), one evaluation.
TINY = ("data.input_size=[64,48]", "schedule.epochs=1", "schedule.warmup_iters=5", "runtime.eval_interval=1")


def test_demo_preset_is_a_fixed_recipe_on_the_bundled_coco_sample():
    from hrnext_trt.training import load_config

    config = load_config(demo_preset(), ["runtime.device=cpu"])
    assert config.dataset == "coco" and config.data.train.root == "bundled:coco-mini"
    assert config.data.train.split == "train" and config.runtime.device == "cpu"
    assert config.data.cache_images and config.data.num_workers == 0
    # 1000 iterations of batch 8 at lr 2e-2, beta2 0.99: the recipe whose AP (0.489) is measured (see the preset).
    assert config.schedule.epochs * (86 // config.data.batch_size) == 1000
    assert (config.optimizer.lr, tuple(config.optimizer.betas)) == (2e-2, (0.9, 0.99))


def test_demo_trains_the_whole_recipe_exports_compares_draws_predicts_and_says_so(tmp_path, caplog):
    out = tmp_path / "demo"
    caplog.set_level(logging.INFO, logger="hrnext_trt")
    result = run_demo(DemoConfig(out=out, train_options=TINY, precisions=("fp32",), device="cpu", threads=1,
                                 batch=16, iters=1, warmup=0, pose_images=2))
    report = result.report
    lines = [record.getMessage() for record in caplog.records if record.name == "hrnext_trt.demo"]

    banners = [line.strip() for line in lines if line.strip().startswith("== [")]
    assert [b[:8] for b in banners] == ["== [1/5]", "== [2/5]", "== [3/5]", "== [4/5]", "== [5/5]"]
    assert "its whole recipe" in banners[0] and "trt-eval" in banners[2]
    progress = "10/10 iterations (1/1 epochs) of its training recipe"
    assert str(result.training) == progress and result.training.complete
    assert any(line.strip().startswith("done in") and progress in line for line in lines)
    summary = lines[-1].strip()
    assert summary.startswith("whole demo: ") and all(f"{stage} " in summary
                                                      for stage in ("train", "export", "draw", "predict"))

    # With a builder installed (TensorRT for RTX builds without a GPU) the engine is there but needs a GPU to run.
    engine_row = ("tensorrt", "fp32" if installed_builders() else "-",
                  "ok" if unavailable_reason("tensorrt", "cuda") is None else "unavailable")
    assert [(r["backend"], r["precision"], r["status"]) for r in report.rows] == [
        ("pytorch", "fp32", "ok"), ("onnxruntime", "fp32", "ok"), engine_row]
    assert OWN_DATA_NOTE in report.footnotes and OWN_DATA_NOTE in report.table()
    assert f"the model: {progress}" in report.table()

    saved = json.loads((out / "report" / "trt_eval.json").read_text())
    assert saved["meta"]["split"] == "train" and saved["meta"]["boxes"] == "gt"
    assert saved["meta"]["images"] == 80 and f"the model: {progress}" in saved["footnotes"]
    assert (out / "engines" / "manifest.json").is_file() and (out / "report" / "trt_eval.png").is_file()
    assert len(list((out / "poses").glob("*.png"))) == 2

    # The last stage: predict on a bundled picture and a clip, the files named in the log.
    image_results = json.loads((out / "predict" / "image" / "results.json").read_text())
    assert image_results and all(len(r["keypoints"]) == 3 * 17 for r in image_results)
    assert (out / "predict" / "image" / "003799.jpg").is_file()
    frames = [json.loads(line) for line in (out / "predict" / "clip" / "clip.jsonl").read_text().splitlines()]
    assert len(frames) == 24 and sum(len(f["people"]) for f in frames) > 0
    assert str(out / "predict" / "clip" / "clip.mp4") in lines[-2]

    # Run again into the same folder with somebody's file among the drawings: refused before any
    # work (was: at the fourth stage, minutes in, after the export and reports were replaced).
    (out / "poses" / "mine.png").write_bytes(b"mine")
    manifest = (out / "engines" / "manifest.json").read_bytes()
    with pytest.raises(HrnextError, match=r"poses holds 1 file no previous demo run listed in its visualize\.json "
                                          r"\(mine\.png\): a demo replaces only its previous run's files"):
        run_demo(DemoConfig(out=out, train_options=TINY, precisions=("fp32",), device="cpu"))
    assert (out / "engines" / "manifest.json").read_bytes() == manifest


def test_a_training_run_the_demo_did_not_make_is_never_deleted(tmp_path):
    """--out DIR whose DIR/train holds one's own training run: refused before any work (was: the demo
    trained there with --force and deleted that run's checkpoints)."""
    train_dir = tmp_path / "project" / "train"
    train_dir.mkdir(parents=True)
    for name in ("best.pth", "epoch_2.pth", "config.yaml"):
        (train_dir / name).write_bytes(b"mine")
    with pytest.raises(HrnextError, match=r"train holds files no demo made \(best\.pth, config\.yaml, epoch_2\.pth\): "
                                          r"the demo trains anew there, deleting a training run's checkpoints; "
                                          r"choose another --out, or move them"):
        run_demo(DemoConfig(out=tmp_path / "project", train_options=TINY, precisions=("fp32",), device="cpu"))
    assert sorted(p.name for p in train_dir.iterdir()) == ["best.pth", "config.yaml", "epoch_2.pth"]
    assert all(p.read_bytes() == b"mine" for p in train_dir.iterdir())
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["train"]
    # A run an earlier demo made, before demos marked theirs (the preset's model on the bundled
    # sample), is the demo's to replace, as it always was.
    from hrnext_trt.demo import check_demo_training_folder
    from hrnext_trt.training import load_config
    from hrnext_trt.training.config import save_config

    save_config(load_config(demo_preset(), ["runtime.device=cpu", *TINY]), train_dir / "config.yaml")
    check_demo_training_folder(train_dir)


def test_training_progress_tells_a_cut_run_from_a_whole_one(tmp_path):
    from hrnext_trt.training import load_config, train

    config = load_config(demo_preset(), ["runtime.device=cpu", *TINY, "schedule.epochs=2",
                                         "runtime.checkpoint_interval=1", "runtime.eval_interval=5"])
    train(config, tmp_path, stop_after_epochs=1, progress=False)
    cut = TrainingProgress.of(find_latest_checkpoint(tmp_path))
    assert (cut.epochs, cut.total_epochs, cut.iterations, cut.total_iterations) == (1, 2, 10, 20)
    assert not cut.complete and str(cut).endswith("only part of it, its AP is below what the whole recipe reaches")
    # Weights without a training record (bench's fresh-weight checkpoints, the paper's files).
    assert TrainingProgress.of(write_arch_checkpoint("hrnext_tiny", 17, (64, 48), "coco", tmp_path / "w.pth")) is None


def test_demo_command_checks_its_options_in_one_line():
    from click.testing import CliRunner

    from hrnext_trt.cli import main

    result = CliRunner().invoke(main, ["demo", "--threads", "0"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --threads must be positive, got 0"
