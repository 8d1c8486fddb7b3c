"""Training end to end on coco-mini: CLI run, learning, exact resume, unreadable images, DDP.

Every run shrinks a real config of train/ with --cfg-options: the narrow hrnext_tiny at 64x48.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hrnext_trt.cli import main as cli
from hrnext_trt.errors import HrnextError
from hrnext_trt.models import load_pose_model, read_checkpoint
from hrnext_trt.training import load_config, read_log, train

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "train" / "hrnext_s_coco_256x192.yaml"


def tiny_options(coco: Path, **extra) -> list[str]:
    """Overrides that turn the paper's COCO config into a seconds-long CPU run on coco-mini."""
    options = {
        "model.arch": "hrnext_tiny", "model.activation_checkpointing": "false", "model.sync_bn": "false",
        "data.input_size": "[64,48]", "data.batch_size": "8", "data.num_workers": "0",
        "data.train.root": str(coco), "data.val.root": str(coco), "data.val.boxes": "gt",
        "schedule.epochs": "1", "schedule.warmup_iters": "5", "runtime.device": "cpu", "runtime.log_interval": "5",
    }
    options.update(extra)
    return [f"{k}={v}" for k, v in options.items()]


@pytest.fixture
def restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


def test_cli_trains_a_real_config_end_to_end(data_dir, tmp_path):
    work = tmp_path / "work"
    result = CliRunner().invoke(cli, ["train", str(CONFIG), "--work-dir", str(work), "--cfg-options",
                                      *tiny_options(data_dir / "coco-mini")])
    assert result.exit_code == 0, result.output
    assert f"checkpoint: {work / 'best.pth'}" in result.output

    ckpt = read_checkpoint(work / "epoch_1.pth")
    assert ckpt["format"] == "hrnext-trt" and ckpt["format_version"] == 1
    assert (ckpt["arch"], ckpt["num_joints"], ckpt["input_size"], ckpt["dataset"]) == ("hrnext_tiny", 17, [64, 48],
                                                                                        "coco")
    assert (ckpt["epoch"], ckpt["iteration"]) == (1, 86 // 8)
    for key in ("optimizer", "scheduler", "scaler", "rng", "best_ap", "config"):
        assert key in ckpt
    # The resolved config: in the work dir and in the checkpoint, the same.
    assert load_config(work / "config.yaml").to_dict() == ckpt["config"]
    assert ckpt["config"]["optimizer"]["lr"] == 4e-3 and ckpt["config"]["data"]["input_size"] == [64, 48]

    model = load_pose_model(work / "best.pth")
    assert model.arch == "hrnext_tiny" and model.num_joints == 17
    assert [r["iteration"] for r in read_log(work, "train")] == [5, 10]
    (val,) = read_log(work, "val")
    assert 0.0 <= val["AP"] <= 1.0
    assert list((work / "tensorboard").iterdir())
    # Training speed: the model step timed apart from the data wait (no GPU memory on the CPU),
    # and scripts/train_speed.py's row read from the same run.
    (epoch,) = read_log(work, "epoch")
    assert epoch["step_s"] > 0 and epoch["data_wait_s"] >= 0 and "max_memory_mib" not in epoch
    assert epoch["steps_per_s"] == pytest.approx(1 / epoch["step_s"])
    speed = subprocess.run([sys.executable, str(REPO / "scripts" / "train_speed.py"), str(work),
                            "--json", str(tmp_path / "speed.json")], capture_output=True, text=True)
    assert speed.returncode == 0, speed.stderr
    (row,) = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert (row["batch"], row["device"], row["precision"], row["max_memory_mib"]) == (8, "cpu", "float32", None)
    assert row["images_per_s"] == pytest.approx(8 / epoch["step_s"]) and "work  cpu " in speed.stdout


def test_loss_halves_on_one_fixed_batch(data_dir):
    from torch.utils.data import default_collate

    from hrnext_trt.data import load_dataset
    from hrnext_trt.data.torch_dataset import TopDownDataset
    from hrnext_trt.models import build_pose_model
    from hrnext_trt.training.loss import keypoint_mse_loss
    from hrnext_trt.training.optim import build_optimizer

    torch.manual_seed(0)
    cfg = load_config(CONFIG)
    crops = TopDownDataset(load_dataset("coco", data_dir / "coco-mini", "train"), (64, 48), train=False)
    batch = default_collate([crops[i] for i in range(4)])
    model = build_pose_model("hrnext_tiny", 17).train()
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    losses = []
    for _ in range(50):
        loss = keypoint_mse_loss(model(batch["image"]), batch["target"], batch["target_weight"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    silent = keypoint_mse_loss(torch.zeros_like(batch["target"]), batch["target"], batch["target_weight"]).item()
    assert losses[-1] < 0.5 * losses[0]
    # Not just silenced outputs: the heatmaps fit the peaks twice as well as all-zero maps would.
    assert losses[-1] < 0.5 * silent


def test_resumed_run_equals_uninterrupted_run(data_dir, tmp_path, restore_determinism):
    cfg = load_config(CONFIG, tiny_options(data_dir / "coco-mini", **{
        "schedule.epochs": "2", "runtime.deterministic": "true", "runtime.checkpoint_interval": "1",
        "runtime.eval_interval": "100", "runtime.flip_test": "false", "data.val.split": "val",
        "model.activation_checkpointing": "true"}))  # the recipe's: recompute and RNG replay resume too
    straight = train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "split", stop_after_epochs=1, progress=False)
    assert not (tmp_path / "split" / "epoch_2.pth").exists()
    train(cfg, tmp_path / "split", resume="auto", progress=False)

    a = read_checkpoint(tmp_path / "straight" / "epoch_2.pth")
    b = read_checkpoint(tmp_path / "split" / "epoch_2.pth")
    assert a["iteration"] == b["iteration"] == 2 * (86 // 8)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    assert [e["event"] for e in read_log(tmp_path / "split", "event")] == ["start", "start"]
    assert straight.name == "best.pth"


def test_failed_evaluation_saves_the_epoch_and_resume_evaluates_it_first(data_dir, tmp_path):
    # An unreadable validation image fails the evaluation after epoch 1 (not a checkpoint epoch):
    # the epoch's training is saved anyway, and --resume auto evaluates it before epoch 2, ending
    # where a run whose evaluation went through ends.
    coco = tmp_path / "coco"
    shutil.copytree(data_dir / "coco-mini", coco)
    cfg = load_config(CONFIG, tiny_options(coco, **{
        "schedule.epochs": "2", "data.batch_size": "16", "runtime.eval_interval": "1",
        "runtime.checkpoint_interval": "2", "runtime.flip_test": "false", "data.val.split": "val"}))
    train(cfg, tmp_path / "straight", progress=False)
    assert not (tmp_path / "straight" / "epoch_1.pth").exists()

    image = sorted((coco / "val2017").iterdir())[0]
    good = image.read_bytes()
    image.write_bytes(b"this is not a JPEG")
    with pytest.raises(HrnextError, match=r"evaluation after epoch 1 failed: .*val2017.*--resume auto") as failed:
        train(cfg, tmp_path / "split", progress=False)
    saved = tmp_path / "split" / "epoch_1.pth"
    assert str(saved) in str(failed.value) and not (tmp_path / "split" / "best.pth").exists()
    assert read_checkpoint(saved)["eval_pending"] and read_checkpoint(saved)["iteration"] == 86 // 16
    (event,) = [e for e in read_log(tmp_path / "split", "event") if e["event"] == "eval_failed"]
    assert event["epoch"] == 1

    image.write_bytes(good)
    train(cfg, tmp_path / "split", resume="auto", progress=False)
    assert not read_checkpoint(saved)["eval_pending"]
    a = read_checkpoint(tmp_path / "straight" / "epoch_2.pth")
    b = read_checkpoint(tmp_path / "split" / "epoch_2.pth")
    assert a["iteration"] == b["iteration"] == 2 * (86 // 16)
    assert (a["best_ap"], a["best_epoch"]) == (b["best_ap"], b["best_epoch"])
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    straight_val = [(r["epoch"], r["AP"]) for r in read_log(tmp_path / "straight", "val")]
    assert [(r["epoch"], r["AP"]) for r in read_log(tmp_path / "split", "val")] == straight_val
    assert [r["epoch"] for r in read_log(tmp_path / "split", "val")] == [1, 2]


def test_run_with_cached_images_equals_run_from_disk(data_dir, tmp_path, restore_determinism):
    options = tiny_options(data_dir / "coco-mini", **{"runtime.deterministic": "true", "runtime.flip_test": "false",
                                                       "data.val.split": "val"})
    disk = read_checkpoint(train(load_config(CONFIG, options), tmp_path / "disk", progress=False))
    cached = read_checkpoint(train(load_config(CONFIG, [*options, "data.cache_images=true"]), tmp_path / "memory",
                                   progress=False))
    assert cached["config"]["data"]["cache_images"] and not disk["config"]["data"]["cache_images"]
    for key, value in disk["state_dict"].items():
        assert torch.equal(cached["state_dict"][key], value), key


def test_unreadable_image_is_reported_and_skipped(data_dir, tmp_path, caplog):
    # A copy of 8 coco-mini images, one person each, one image replaced by garbage.
    src = data_dir / "coco-mini"
    ann = json.loads((src / "annotations" / "person_keypoints_train2017.json").read_text())
    people = {}
    for a in ann["annotations"]:
        if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0):
            people.setdefault(a["image_id"], a)
    chosen = list(people)[:8]
    images = [im for im in ann["images"] if im["id"] in chosen]
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    for im in images:
        shutil.copy(src / "train2017" / im["file_name"], root / "train2017" / im["file_name"])
    bad = root / "train2017" / images[3]["file_name"]
    bad.write_bytes(b"this is not a JPEG")
    subset = {**ann, "images": images, "annotations": [people[i] for i in chosen]}
    (root / "annotations" / "person_keypoints_train2017.json").write_text(json.dumps(subset))

    cfg = load_config(CONFIG, tiny_options(src, **{"data.train.root": str(root), "data.batch_size": "4",
                                                   "data.val.split": "val", "schedule.epochs": "2"}))
    train(cfg, tmp_path / "work", progress=False)
    epochs = read_log(tmp_path / "work", "epoch")
    assert [r["skipped_images"] for r in epochs] == [1, 1]
    err = caplog.text
    assert err.count(str(bad)) == 1  # reported once, by path
    assert read_checkpoint(tmp_path / "work" / "epoch_2.pth")["iteration"] == 4


def test_epoch_batches_repeat_with_workers(data_dir):
    from hrnext_trt.data import load_dataset
    from hrnext_trt.data.torch_dataset import TopDownDataset
    from hrnext_trt.training.loader import train_loader

    crops = TopDownDataset(load_dataset("coco", data_dir / "coco-mini", "train"), (64, 48), train=True)

    def first_batch(epoch: int):
        return next(iter(train_loader(crops, 4, 2, seed=3, epoch=epoch, rank=0, world_size=1)))

    a, b, c = first_batch(5), first_batch(5), first_batch(6)
    assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])  # order and augmentation
    assert not torch.equal(a["image"], c["image"])


def run_train_process(work: Path, options: list[str], nproc: int | None) -> str:
    """``hrnext-trt train CONFIG`` in a process of its own: under ``torch.distributed.run`` with
    ``nproc`` processes, or plain (None); one thread each, so their CPU arithmetic is the same. Returns
    its standard output."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc else []
    cmd = [sys.executable, *launcher, "-m", "hrnext_trt", "train", str(CONFIG), "--work-dir", str(work),
           "--cfg-options", *options]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_ddp_two_cpu_processes_train_and_save(data_dir, tmp_path):
    work = tmp_path / "work"
    out = run_train_process(work, tiny_options(data_dir / "coco-mini", **{
        "data.batch_size": "4", "data.val.split": "val", "runtime.flip_test": "false",
        "model.activation_checkpointing": "true"}), nproc=2)  # checkpointing: the recipe's, as DDP runs it on GPUs
    assert out.splitlines() == [f"checkpoint: {work / 'best.pth'}"]  # rank 0's line only
    assert sorted(p.name for p in work.glob("*.pth")) == ["best.pth", "epoch_1.pth"]
    ckpt = read_checkpoint(work / "epoch_1.pth")
    assert ckpt["iteration"] == 86 // 2 // 4  # each rank saw half the data
    assert len(ckpt["rng"]) == 2  # both ranks' generators
    (start,) = read_log(work, "event")
    assert start["world_size"] == 2


def test_torchrun_one_process_trains_through_ddp_as_a_plain_run(data_dir, tmp_path):
    # One process under torchrun joins a process group (NCCL on a GPU, gloo here) and steps through
    # DDP, the multi-GPU path; its weights must equal a plain process's run of the same seed.
    options = tiny_options(data_dir / "coco-mini", **{"runtime.deterministic": "true", "runtime.flip_test": "false",
                                                       "data.val.split": "val"})
    launchers = {"plain": None, "ddp": 1}
    for name, nproc in launchers.items():
        run_train_process(tmp_path / name, options, nproc)
    plain, ddp = (read_log(tmp_path / name, "event")[0] for name in launchers)
    assert (plain["world_size"], plain["dist_backend"]) == (1, None)
    assert (ddp["world_size"], ddp["dist_backend"]) == (1, "gloo")
    a, b = (read_checkpoint(tmp_path / name / "epoch_1.pth") for name in launchers)
    assert a["iteration"] == b["iteration"] == 86 // 8
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)


def test_cli_config_error_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["train", str(CONFIG), "--work-dir", str(tmp_path), "--cfg-options",
                                      "optimizer.betas=[0.9]"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "optimizer.betas" in lines[0]
