"""Progress output: a live bar on a terminal, a few log lines anywhere else."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from tqdm import tqdm

from hrnext_trt.progress import SparseProgress, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    """Seconds that advance only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_terminal_gets_a_live_bar():
    stream = _Terminal()
    for _ in progress_bar(range(50), desc="work", stream=stream):
        pass
    assert "\r" in stream.getvalue() and "50/50" in stream.getvalue()


def test_non_terminal_gets_no_bar_and_sparse_lines(caplog):
    stream = io.StringIO()
    bar = progress_bar(total=1000, desc="work", stream=stream)
    assert isinstance(bar, SparseProgress) and not isinstance(bar, tqdm)

    clock = _Clock()
    caplog.set_level(logging.INFO, logger="hrnext_trt")
    with SparseProgress(total=1000, desc="predict coco", unit="person", every_s=30, clock=clock) as sparse:
        for _ in range(1000):
            clock.now += 0.1  # 100 s in all
            sparse.update()
            sparse.set_postfix(loss="0.5")
    lines = [r.getMessage() for r in caplog.records]
    assert stream.getvalue() == ""
    # One line per 30 s of work (at 30, 60, 90 s) and the closing one: 4 lines, not 1000 redraws.
    assert len(lines) == 4, lines
    assert lines[0] == "predict coco: 300/1000 person (30 %), 10 person/s, 30 s, loss=0.5"
    assert lines[-1] == "predict coco: 1000/1000 person (100 %), 10 person/s, 100 s, loss=0.5 (done)"


def test_short_work_off_a_terminal_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="hrnext_trt")
    clock = _Clock()
    items = list(SparseProgress(range(20), desc="epoch 1/2", every_s=30, clock=clock))
    assert items == list(range(20)) and caplog.records == []


def test_cli_run_into_a_pipe_writes_no_bar(data_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hrnext_trt", "visualize", "--dataset", "coco", "--data-root",
                           str(data_dir / "coco-mini"), "--split", "train", "--out", str(tmp_path), "--max-images",
                           "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "visualize" not in proc.stderr  # no bar, no redraws
    assert proc.stdout.strip() == f"wrote 3 pictures to {tmp_path}"


def test_cli_sends_progress_lines_to_stderr(capsys):
    from hrnext_trt.cli import configure_logging

    configure_logging()
    list(SparseProgress(range(3), desc="work", every_s=0))
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("work: 1/3 it (33 %)") and err[-1].endswith("(done)") and len(err) == 4
