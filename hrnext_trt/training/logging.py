"""Training records: one JSON object per line in ``log.jsonl`` plus TensorBoard scalars.

Only rank 0 writes; other ranks get a logger that drops everything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

LOG_NAME = "log.jsonl"


def read_log(work_dir: str | Path, kind: str | None = None) -> list[dict]:
    """The records of a run's ``log.jsonl``, in order; only those of ``kind`` when given."""
    lines = (Path(work_dir) / LOG_NAME).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if kind is None or r["kind"] == kind]


class TrainLogger:
    def __init__(self, work_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        work_dir = Path(work_dir)
        # Append: a resumed run continues the same log.
        self._file = open(work_dir / LOG_NAME, "a", encoding="utf-8")
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(log_dir=str(work_dir / "tensorboard"))

    def log(self, kind: str, step: int, **values) -> None:
        """One record: ``kind`` is "train", "val" or "event"; numbers also go to TensorBoard."""
        if not self.enabled:
            return
        record = {"kind": kind, "time": round(time.time(), 3), "iteration": step, **values}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch",):
                self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._tb.close()
            self._file = self._tb = None
