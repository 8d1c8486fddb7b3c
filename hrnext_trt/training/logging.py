"""Training records: one JSON object per line in ``log.jsonl`` plus TensorBoard scalars.

Only rank 0 writes; other ranks get a logger that drops everything. A resumed run appends to the
same log from its checkpoint's iteration: what an interrupted run logged past that point (an
epoch it did not finish, or finished without saving) is superseded, and ``read_log`` leaves it
out, as TensorBoard does (``purge_step``). A line a kill or a full disk left torn is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from hrnext_trt.errors import raise_storage_error

log = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"


def read_log(work_dir: str | Path, kind: str | None = None) -> list[dict]:
    """The records of a run's ``log.jsonl``, in order, each step once (the resumed run's where an
    interrupted one logged past its checkpoint); only those of ``kind`` when given."""
    records, torn = [], 0
    for line in (Path(work_dir) / LOG_NAME).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            record, torn = None, torn + 1
        if not isinstance(record, dict):
            continue
        if record.get("event") == "start":  # a run (re)starting at this iteration supersedes what lies past it
            records = [r for r in records if r.get("iteration", 0) <= record.get("iteration", 0)]
        records.append(record)
    if torn:
        log.warning("%s: skipped %d line(s) that are not whole JSON records", Path(work_dir) / LOG_NAME, torn)
    return [r for r in records if kind is None or r.get("kind") == kind]


def _drop_torn_line(path: Path) -> None:
    """Cut a last line without its newline (a kill or a full disk mid-write): appended to, it would
    glue the next record to it and neither would parse."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 65536))
            tail = f.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            f.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size))
    except FileNotFoundError:
        return


def _quiet_tensorboard_thread() -> None:
    """TensorBoard's writer thread prints its own traceback when a write fails (a full disk), and
    the writer raises the same error in the training thread at its next call, which says it in one
    line: the thread's print is dropped; every other thread's error is printed as before."""
    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # another TensorBoard: its thread's print stays
        return
    previous = threading.excepthook
    if getattr(previous, "hrnext_quiet_tensorboard", False):
        return

    def hook(args):
        if not isinstance(args.thread, _AsyncWriterThread):
            previous(args)

    hook.hrnext_quiet_tensorboard = True
    threading.excepthook = hook


class TrainLogger:
    def __init__(self, work_dir: str | Path, enabled: bool = True, start_step: int = 0):
        """``start_step``: the iteration a resumed run starts at (what was logged past it is superseded)."""
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        work_dir = Path(work_dir)
        # Append: a resumed run continues the same log.
        _drop_torn_line(work_dir / LOG_NAME)
        self._file = open(work_dir / LOG_NAME, "a", encoding="utf-8")
        from torch.utils.tensorboard import SummaryWriter

        _quiet_tensorboard_thread()
        tb_dir = work_dir / "tensorboard"
        before = set(tb_dir.iterdir()) if tb_dir.is_dir() else set()
        try:
            # purge_step: TensorBoard hides the interrupted run's scalars past the resumed iteration.
            self._tb = SummaryWriter(log_dir=str(tb_dir), purge_step=start_step or None)
        except BaseException as exc:
            self._file.close()
            # An events file a full disk left empty would be one more per attempt to resume.
            for made in set(tb_dir.iterdir()) - before if tb_dir.is_dir() else ():
                if made.is_file() and made.stat().st_size == 0:
                    made.unlink()
            raise_storage_error(exc, tb_dir)  # TensorBoard's error names no file
            raise

    def log(self, kind: str, step: int, **values) -> None:
        """One record: ``kind`` is "train", "val" or "event"; numbers also go to TensorBoard."""
        if not self.enabled:
            return
        record = {"kind": kind, "time": round(time.time(), 3), "iteration": step, **values}
        where = Path(self._file.name)
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            where = Path(self._tb.log_dir)
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch",):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
        except OSError as exc:  # neither names its file
            raise_storage_error(exc, where)
            raise

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._tb.close()
            self._file = self._tb = None
