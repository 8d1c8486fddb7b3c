"""Atomic checkpoint writes, RNG state capture, finding the checkpoint to resume."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from hrnext_trt.training.checkpointing import (atomic_torch_save, capture_rng_state, find_latest_checkpoint,
                                               restore_rng_state)


class _FailsWhenPickled:
    """Pickling this raises: a writer that dies after part of the file is on disk."""

    def __reduce__(self):
        raise RuntimeError("killed mid-save")


def test_failed_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "epoch_5.pth"
    first = {"state_dict": {"w": torch.arange(10.0)}, "epoch": 5}
    atomic_torch_save(first, path)
    before = path.read_bytes()

    # The temporary file already holds the archive's first records when the writer fails.
    doomed = {"state_dict": {"w": torch.zeros(1 << 20)}, "epoch": 6, "boom": _FailsWhenPickled()}
    with pytest.raises(RuntimeError, match="killed mid-save"):
        atomic_torch_save(doomed, path)

    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["epoch"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_5.pth"]  # no temporary file left behind


_KILL_MID_SAVE = """
import os, signal, sys, torch
from hrnext_trt.training.checkpointing import atomic_torch_save

class KillsWhenPickled:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)

atomic_torch_save({"state_dict": {"w": torch.zeros(1000)}, "epoch": 6, "kill": KillsWhenPickled()}, sys.argv[1])
"""


def test_killed_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "epoch_5.pth"
    atomic_torch_save({"epoch": 5}, path)
    proc = subprocess.run([sys.executable, "-c", _KILL_MID_SAVE, str(path)], capture_output=True)
    assert proc.returncode == -9  # SIGKILL, in the middle of torch.save
    assert torch.load(path, weights_only=True) == {"epoch": 5}
    assert find_latest_checkpoint(tmp_path) == path  # the orphaned temporary file is never picked


def test_rng_state_restores_every_generator():
    state = capture_rng_state()
    draws = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.random(), np.random.rand(5), torch.rand(5)  # move on
    restore_rng_state(state)
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == draws


def test_rng_state_survives_a_weights_only_load(tmp_path):
    # Checkpoints are read with weights_only=True: the RNG state must be plain data.
    state = capture_rng_state()
    atomic_torch_save({"rng": [state]}, tmp_path / "c.pth")
    loaded = torch.load(tmp_path / "c.pth", weights_only=True)["rng"][0]
    expected = np.random.rand(2).tolist()
    restore_rng_state(loaded)
    assert np.random.rand(2).tolist() == expected


def test_latest_checkpoint_is_the_highest_epoch(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
    for name in ("epoch_5.pth", "epoch_10.pth", "epoch_9.pth", "best.pth", ".epoch_15.pth.x.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert find_latest_checkpoint(tmp_path).name == "epoch_10.pth"


def test_resume_auto_takes_the_latest_state_best_pth_included(tmp_path):
    """best.pth holds the whole state too: where evaluations come more often than epoch_N.pth, it
    can be the latest (or the only) one."""
    from hrnext_trt.training.checkpointing import latest_training_state

    def save(name, epoch):
        atomic_torch_save({"state_dict": {}, "epoch": epoch}, tmp_path / name)

    assert latest_training_state(tmp_path) is None
    save("best.pth", 3)
    assert latest_training_state(tmp_path).name == "best.pth"
    save("epoch_2.pth", 2)
    assert latest_training_state(tmp_path).name == "best.pth"
    save("epoch_3.pth", 3)
    assert latest_training_state(tmp_path).name == "epoch_3.pth"  # a tie: the epoch's file


def test_a_checkpoint_gets_the_mode_of_any_new_file(tmp_path):
    # mkstemp creates 0600 files: checkpoints were unreadable to the group sharing a work dir while
    # config.yaml beside them was not. Now both follow the umask.
    import os
    import stat

    old = os.umask(0o022)
    try:
        checkpoint = atomic_torch_save({"x": 1}, tmp_path / "epoch_1.pth")
        (tmp_path / "config.yaml").write_text("x: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(checkpoint.stat().st_mode) == stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == 0o644
