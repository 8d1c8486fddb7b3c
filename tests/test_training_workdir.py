"""A work dir belongs to one run (docs/BAD_INPUTS.md, rows W1-W9 and TD1).

Runs are the paper's COCO config shrunk to hrnext_tiny at 64x48 on coco-mini's 4 validation
images (3 iterations an epoch): seconds each.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main as cli
from hrnext_trt.errors import HrnextError
from hrnext_trt.models import read_checkpoint
from hrnext_trt.training import read_log
from hrnext_trt.training.work_dir import LOCK_NAME, acquire_lock, claim_work_dir, config_changes

from tests.test_training_loop import CONFIG, tiny_options


def tiny(coco: Path, **extra) -> list[str]:
    """The training tests' tiny run, on coco-mini's 4 validation images: 3 iterations an epoch."""
    return tiny_options(coco, **{"data.batch_size": "4", "data.train.split": "val", "data.val.split": "val",
                                 "schedule.warmup_iters": "2", "runtime.flip_test": "false", **extra})


def train_cli(work: Path, options: list[str], *extra: str):
    return CliRunner().invoke(cli, ["train", str(CONFIG), "--work-dir", str(work), *extra, "--cfg-options", *options])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
    return errors[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def start_events(work: Path) -> int:
    return sum(r.get("event") == "start" for r in read_log(work))


def test_a_finished_run_is_never_overwritten(data_dir, tmp_path):
    coco, work = data_dir / "coco-mini", tmp_path / "work"
    first = train_cli(work, tiny(coco))
    assert first.exit_code == 0, first.output
    # The tiny run trains on coco-mini's val images, COCO's published test split: said.
    assert "warning: data.train is coco val, the split coco's accuracy is published on" in first.stderr
    assert not (work / LOCK_NAME).exists()  # released at the end
    before = snapshot(work)
    assert {"best.pth", "epoch_1.pth", "config.yaml", "log.jsonl"} <= set(before)

    # W2: the same config again, without --resume.
    line = one_error_line(train_cli(work, tiny(coco)))
    assert "already holds a run's checkpoints" in line and "--resume auto" in line and "--force" in line
    # W1: a different run.
    line = one_error_line(train_cli(work, tiny(coco, **{"optimizer.lr": "1e-3"})))
    assert "holds another run" in line and "optimizer.lr: 0.004 -> 0.001" in line and "--force" in line
    # W3: continuing it with a config that trains something else.
    line = one_error_line(train_cli(work, tiny(coco, **{"optimizer.lr": "1e-3"}), "--resume", "auto"))
    assert "epoch_1.pth was trained with another config" in line and "optimizer.lr" in line
    # W8: a folder given to --resume.
    line = one_error_line(train_cli(work, tiny(coco), "--resume", str(work)))
    assert "is a folder" in line and "--resume auto" in line
    assert snapshot(work) == before and not (work / LOCK_NAME).exists()  # nothing touched by the refusals
    # W21: killed after an evaluation's new best.pth and before its epoch_N.pth: best.pth holds the
    # whole state, and --resume auto continues it (was: "starting from scratch", then refused as a
    # fresh start in a dir with checkpoints, advising the --resume auto just given).
    only_best = tmp_path / "only_best"
    shutil.copytree(work, only_best)
    (only_best / "epoch_1.pth").unlink()
    resumed = train_cli(only_best, tiny(coco), "--resume", "auto", "--max-epochs", "2")
    assert resumed.exit_code == 0, resumed.output
    continued = read_checkpoint(only_best / "epoch_2.pth")
    assert (continued["epoch"], continued["iteration"]) == (2, 6)  # 3 iterations an epoch, from epoch 1 on

    # Continuing with a longer schedule is the same run (--max-epochs stretches it on purpose);
    # W9: the temporary file of a killed save goes at the next save.
    stale = work / ".epoch_2.pth.k1lled.tmp"
    stale.write_bytes(b"half a checkpoint")
    resumed = train_cli(work, tiny(coco), "--resume", "auto", "--max-epochs", "2")
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint(work / "epoch_2.pth")["epoch"] == 2 and not stale.exists()
    assert start_events(work) == 2

    # --force continues with the new optimizer values, not the checkpoint's (its lr and weight
    # decay were restored with its moments).
    new_values = {"optimizer.lr": "1e-3", "optimizer.weight_decay": "0.05", "optimizer.betas": "[0.8,0.99]"}
    changed = train_cli(work, tiny(coco, **new_values), "--resume", "auto", "--max-epochs", "3", "--force")
    assert changed.exit_code == 0, changed.output
    ckpt = read_checkpoint(work / "epoch_3.pth")
    group = ckpt["optimizer"]["param_groups"][0]
    assert ckpt["scheduler"]["base_lrs"] == [1e-3] and group["initial_lr"] == 1e-3
    assert group["weight_decay"] == 0.05 and tuple(group["betas"]) == (0.8, 0.99) and group["lr"] < 1e-3
    # W13: a finished run resumed again (a re-queued job) trains nothing and writes nothing; W14:
    # fewer epochs than it has trained is refused (was: exit 0 and config.yaml rewritten to the fewer).
    before = snapshot(work)
    again = train_cli(work, tiny(coco, **new_values), "--resume", "auto", "--max-epochs", "3")
    assert again.exit_code == 0 and "completed all 3 epochs of the schedule: nothing to train" in again.output
    line = one_error_line(train_cli(work, tiny(coco, **new_values), "--resume", "auto", "--max-epochs", "2"))
    assert "has trained 3 epochs, more than the 2 asked: pass --max-epochs 3 or more" in line
    assert snapshot(work) == before

    # --force starts over: the old run's checkpoints and logs go first, so nothing is mixed.
    forced = train_cli(work, tiny(coco, **{"optimizer.lr": "1e-3"}), "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in work.glob("*.pth")) == ["best.pth", "epoch_1.pth"]
    assert read_checkpoint(work / "best.pth")["config"]["optimizer"]["lr"] == 1e-3
    assert "lr: 0.001" in (work / "config.yaml").read_text() and start_events(work) == 1


def test_initial_weights_are_recorded_and_not_needed_to_resume(data_dir, tmp_path, monkeypatch):
    # A PoseTrack-style run: the recipe's model.load_from names a COCO run that is not there,
    # --load-from gives the weights. config.yaml and the checkpoints record the weights used, and
    # resuming needs none (the checkpoint holds the weights), so the recipe's path may stay absent.
    coco = data_dir / "coco-mini"
    assert train_cli(tmp_path / "coco", tiny(coco)).exit_code == 0
    weights = tmp_path / "coco" / "best.pth"
    options = tiny(coco, **{"model.load_from": "work_dirs/absent_coco_run/best.pth"})
    work = tmp_path / "ft"
    first = train_cli(work, options, "--load-from", str(weights))
    assert first.exit_code == 0, first.output
    assert f"load_from: {weights}" in (work / "config.yaml").read_text()
    assert read_checkpoint(work / "epoch_1.pth")["config"]["model"]["load_from"] == str(weights)
    # Other first weights for a resumed run would be ignored: refused (was: exit 0, ignored);
    # the same --load-from again is a re-queued command line and resumes.
    line = one_error_line(train_cli(work, options, "--resume", "auto", "--max-epochs", "2", "--load-from",
                                    str(work / "epoch_1.pth")))
    assert f"--load-from {work / 'epoch_1.pth'} gives a new run its first weights" in line
    assert f"continues a run that started from {weights}: drop --load-from to resume it" in line
    resumed = train_cli(work, options, "--resume", "auto", "--max-epochs", "2", "--load-from", str(weights))
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint(work / "epoch_2.pth")["config"]["model"]["load_from"] == str(weights)
    assert f"load_from: {weights}" in (work / "config.yaml").read_text()
    # A work dir's config.yaml names that work dir: --resume auto continues the run there.
    more = CliRunner().invoke(cli, ["train", str(work / "config.yaml"), "--resume", "auto", "--max-epochs", "3"])
    assert more.exit_code == 0, more.output
    assert read_checkpoint(work / "epoch_3.pth")["epoch"] == 3
    # Any other config.yaml is a config like the rest: its folder is no work dir (was about to become one).
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(work / "config.yaml", project / "config.yaml")
    monkeypatch.chdir(tmp_path)  # the default work_dirs/ lands here
    other = CliRunner().invoke(cli, ["train", str(project / "config.yaml"), "--max-epochs", "1"])
    assert other.exit_code == 0, other.output
    assert (tmp_path / "work_dirs" / "config" / "epoch_1.pth").is_file()
    assert sorted(p.name for p in project.iterdir()) == ["config.yaml"]


def test_overrides_before_the_config_are_named_as_such():
    result = CliRunner().invoke(cli, ["train", "--cfg-options", "optimizer.lr=1e-3", "data.batch_size=4", str(CONFIG)])
    line = one_error_line(result)
    assert "data.batch_size=4 is a KEY=VALUE override where the config file goes: put the config first" in line


def test_a_gpu_device_in_the_config_is_blamed_on_the_config(tmp_path, data_dir):
    """runtime.device=cuda from --cfg-options (or the YAML) on a machine without a GPU names that key,
    not a --device flag nobody passed."""
    from hrnext_trt.contract import nvidia_gpu_present

    if nvidia_gpu_present():
        pytest.skip("this machine has an NVIDIA GPU")
    result = CliRunner().invoke(cli, ["train", str(CONFIG), "--work-dir", str(tmp_path / "w"), "--cfg-options",
                                      *tiny_options(data_dir / "coco-mini"), "runtime.device=cuda"])
    assert one_error_line(result) == ("error: runtime.device is cuda (--device, or the config) but this machine has "
                                      "no NVIDIA GPU (no driver device found): use --device cpu, or auto")


@pytest.mark.parametrize("case, extra, options, needle", [
    ("bad-resume-path", ["--resume", "nothere.pth"], {}, "checkpoint not found"),
    ("resume-a-folder", ["--resume", "{work}"], {}, "is a folder"),
    ("bad-train-root", [], {"data.train.root": "/no/such/coco"}, "/no/such/coco"),
    ("bad-val-root", [], {"data.val.root": "/no/such/val"}, "/no/such/val"),
    ("val-of-other-joints", [], {"data.val.name": "crowdpose", "data.val.split": "test",
                                 "data.val.root": "{shared}/crowdpose-mini"},
     "data.val is crowdpose (14 joints), data.train coco (17)"),
    ("missing-initial-weights", [], {"model.load_from": "/no/such/coco.pth"},
     "'s model.load_from) not found: train that run first, pass --load-from"),
    ("missing-load-from", ["--load-from", "/no/such/coco.pth"], {}, "(--load-from) not found"),
])
def test_failed_checks_leave_the_work_dir_as_it_was(data_dir, tmp_path, case, extra, options, needle):
    # W6, W7: a run's files (here: those of an earlier, different run) stay byte for byte.
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text("model: {arch: hrnet_w32}\n")
    (work / "log.jsonl").write_text('{"kind": "event", "event": "start"}\n')
    before = snapshot(work)
    extra = [word.format(work=work) for word in extra]
    options = {k: v.format(shared=data_dir) for k, v in options.items()}
    line = one_error_line(train_cli(work, tiny(data_dir / "coco-mini", **options), *extra))
    assert needle in line
    assert snapshot(work) == before and not (work / LOCK_NAME).exists()
    # A work dir that did not exist is not created by a refused run.
    fresh = tmp_path / "fresh"
    one_error_line(train_cli(fresh, tiny(data_dir / "coco-mini", **options), *[w.replace(str(work), str(fresh))
                                                                               for w in extra]))
    assert not fresh.exists()


def test_a_second_concurrent_run_is_refused_and_a_stale_lock_taken_over(tmp_path):
    work = tmp_path / "work"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # W4: a live run of this machine holds the lock (its pid and start time are checked).
        with acquire_lock(work) as lock:
            data = json.loads(lock.path.read_text())
            assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
            with pytest.raises(HrnextError, match=rf"in use by another training run \(pid {os.getpid()}"):
                acquire_lock(work, force=True)  # --force never breaks a live run's lock
        assert not (work / LOCK_NAME).exists()
        other = {"pid": sleeper.pid, "host": socket.gethostname(), "started": "now"}
        (work / LOCK_NAME).write_text(json.dumps(other))
        with pytest.raises(HrnextError, match=f"pid {sleeper.pid}"):
            claim_work_dir(work, {"model": {}}, resuming=False, force=False)
        assert json.loads((work / LOCK_NAME).read_text())["pid"] == sleeper.pid  # left to its owner
    finally:
        sleeper.kill()
        sleeper.wait()
    # W5: the run holding it was killed: its lock is stale and taken over.
    with claim_work_dir(work, {"model": {}}, resuming=False, force=False) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (work / LOCK_NAME).exists()
    # A lock of another machine cannot be checked: refused unless --force.
    (work / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "another-node", "started": "then"}))
    with pytest.raises(HrnextError, match="cannot check .*delete .*train.lock or pass --force"):
        acquire_lock(work)
    acquire_lock(work, force=True).release()


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    # The pid of a killed run may belong to another process now: the recorded start time tells.
    work = tmp_path / "work"
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "started": "long ago", "proc_start": "1"}))
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("process start times are read from /proc (Linux)")
    acquire_lock(work).release()


def test_config_changes_name_each_key():
    old = {"optimizer": {"lr": 0.004, "betas": [0.9, 0.999]}, "schedule": {"epochs": 210}}
    new = {"optimizer": {"lr": 0.001, "betas": [0.9, 0.999]}, "schedule": {"epochs": 300}}
    assert config_changes(old, new) == ["optimizer.lr: 0.004 -> 0.001", "schedule.epochs: 210 -> 300"]
    assert config_changes(old, new, ignore=("schedule.epochs",)) == ["optimizer.lr: 0.004 -> 0.001"]


def test_every_image_unreadable_fails_and_saves_nothing(data_dir, tmp_path):
    # TD1: zero optimizer steps is a failure, never random weights saved as best.pth.
    root = tmp_path / "coco"
    shutil.copytree(data_dir / "coco-mini" / "annotations", root / "annotations")
    (root / "val2017").mkdir()
    for image in (data_dir / "coco-mini" / "val2017").iterdir():
        (root / "val2017" / image.name).write_bytes(b"not a JPEG")
    work = tmp_path / "work"
    started = time.perf_counter()
    line = one_error_line(train_cli(work, tiny(root)))
    assert "epoch 1 made no optimizer step" in line and "training images were unreadable" in line
    assert str(root / "val2017") in line
    assert not list(work.glob("*.pth")) and not (work / LOCK_NAME).exists()
    assert time.perf_counter() - started < 120


def test_validation_data_is_checked_before_any_training(data_dir, tmp_path):
    """A validation split without people, or with images missing, failed at the first evaluation:
    an eval_interval of training (10 epochs of the paper's recipe) later. Now before any work."""
    for damage, needle in (("no people", "data.val (coco val) has no person to evaluate"),
                           ("missing image", "data.val (coco val): 1 of its images are not there (first: ")):
        root = tmp_path / damage.replace(" ", "_")
        shutil.copytree(data_dir / "coco-mini", root)
        ann = root / "annotations" / "person_keypoints_val2017.json"
        if damage == "no people":
            ann.write_text(json.dumps({**json.loads(ann.read_text()), "annotations": []}))
        else:
            next((root / "val2017").iterdir()).unlink()
        work = tmp_path / f"work_{root.name}"
        line = one_error_line(train_cli(work, tiny_options(root)))
        assert needle in line, line
        assert not list(work.glob("*.pth"))


def test_an_empty_lock_is_a_run_writing_it_or_one_that_died_before_it_could(tmp_path):
    """A lock file left empty (its run killed between creating and writing it, or a full disk) would
    refuse every later run as "a run this machine cannot check": young it is a run starting, old it
    is stale and taken over."""
    work = tmp_path / "w"
    work.mkdir()
    (work / LOCK_NAME).write_text("")
    with pytest.raises(HrnextError, match="is in use by another training run"):
        acquire_lock(work)
    an_hour_ago = time.time() - 3600
    os.utime(work / LOCK_NAME, (an_hour_ago, an_hour_ago))
    acquire_lock(work).release()
    assert not (work / LOCK_NAME).exists()


def _take_lock(folder: str, start: float, held) -> None:
    while time.time() < start:
        pass
    try:
        lock = acquire_lock(Path(folder))
    except HrnextError:
        return
    held.put(os.getpid())
    time.sleep(0.3)
    lock.release()


def test_runs_starting_at_once_take_a_stale_lock_over_one_at_a_time(tmp_path):
    """Two re-queued jobs finding their killed run's stale lock: only one takes it over (was: both, in
    6 of 60 tries: one read and removed the stale lock while the other had already replaced it)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for trial in range(8):
        work = tmp_path / str(trial)
        work.mkdir()
        (work / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 22 + 11, "host": socket.gethostname()}))
        held = context.Queue()
        start = time.time() + 0.2
        racers = [context.Process(target=_take_lock, args=(str(work), start, held)) for _ in range(3)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        holders = []
        while not held.empty():
            holders.append(held.get())
        assert len(holders) == 1, (trial, holders)


def test_a_resumed_log_drops_a_torn_line_and_shows_each_step_once(tmp_path):
    """An interrupted run's log may end in a torn line and hold records past the checkpoint it is
    resumed from: the resumed run neither glues its first record to the fragment (every later read
    failed) nor leaves the abandoned steps to be counted twice."""
    from hrnext_trt.training.logging import LOG_NAME, TrainLogger

    records = [{"kind": "event", "iteration": 0, "event": "start"}, {"kind": "train", "iteration": 5, "loss": 2.0},
               {"kind": "train", "iteration": 10, "loss": 1.5}, {"kind": "epoch", "iteration": 10, "loss": 1.7},
               {"kind": "train", "iteration": 15, "loss": 1.2}]  # epoch 2, never saved
    (tmp_path / LOG_NAME).write_text("".join(json.dumps(r) + "\n" for r in records) + '{"kind": "train", "ite')
    logger = TrainLogger(tmp_path, start_step=10)
    logger.log("event", 10, event="start")
    logger.log("train", 15, loss=1.1)
    logger.close()
    lines = (tmp_path / LOG_NAME).read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole
    assert [(r["kind"], r["iteration"]) for r in read_log(tmp_path)] == [
        ("event", 0), ("train", 5), ("train", 10), ("epoch", 10), ("event", 10), ("train", 15)]
    assert [r["loss"] for r in read_log(tmp_path, "train")] == [2.0, 1.5, 1.1]


def test_max_epochs_that_cut_a_schedule_at_a_checkpoint_evaluate_its_last_epoch(tmp_path, data_dir):
    """--max-epochs N on a run whose checkpoint of epoch N was saved mid-schedule (no evaluation
    there): epoch N is evaluated as the run's last and best.pth written (was: "completed all N
    epochs: nothing to train", with no evaluation and no best.pth)."""
    from hrnext_trt.training import load_config, train

    options = tiny_options(data_dir / "coco-mini", **{"schedule.epochs": "3", "runtime.checkpoint_interval": "1",
                                                       "runtime.eval_interval": "10"})
    train(load_config(CONFIG, options), tmp_path, progress=False)
    assert [r["epoch"] for r in read_log(tmp_path, "val")] == [3]  # only the last epoch was evaluated
    for name in ("epoch_3.pth", "best.pth"):  # as if killed in epoch 3: epoch_2.pth is the latest state
        (tmp_path / name).unlink()
    options = [o for o in options if not o.startswith("schedule.epochs=")] + ["schedule.epochs=2"]
    train(load_config(CONFIG, options), tmp_path, resume="auto", progress=False)
    # Epoch 2 evaluated as the run's last; the abandoned epoch 3's record is superseded.
    assert [r["epoch"] for r in read_log(tmp_path, "val")] == [2] and (tmp_path / "best.pth").is_file()
