"""A work dir belongs to one run.

Two guards, both taken by the main process after every other check has passed and before the
first write:

- a lock file (``train.lock``: pid, host, start time) while a run writes there, so a second
  concurrent run is refused; a lock whose process is gone (killed run) is stale and taken over;
- ownership: a new run never overwrites another's checkpoints. Starting a run where checkpoints
  exist, or where ``config.yaml`` describes a different run, needs ``--resume auto`` (continue
  it), another ``--work-dir``, or ``force`` (start over: the old run's checkpoints and logs are
  deleted first, so ``--resume auto`` can never pick them up later).

Resuming with a config that trains differently (model, data, optimizer, schedule policy) than
the checkpoint is refused too, except for the keys that only say how to run (``RESUME_FREE``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from hrnext_trt.errors import HrnextError
from hrnext_trt.folder_lock import FolderLock, Holder, acquire
from hrnext_trt.reports import check_not_another_commands
from hrnext_trt.training.checkpointing import BEST_NAME, epoch_checkpoints
from hrnext_trt.training.logging import LOG_NAME

log = logging.getLogger(__name__)

LOCK_NAME = "train.lock"
CONFIG_NAME = "config.yaml"
_RUN_LOGS = (LOG_NAME, CONFIG_NAME)  # with the checkpoints and tensorboard/: what a run writes
# Keys that change how a run goes on, not what it trains: a resumed run may change them
# (schedule.epochs: --max-epochs stretches a schedule on purpose).
# model.load_from: the initial weights, which a resumed run replaces with the checkpoint's.
RESUME_FREE = ("schedule.epochs", "model.load_from", "data.num_workers", "data.val_batch_size", "data.val",
               "runtime.device", "runtime.deterministic", "runtime.checkpoint_interval", "runtime.eval_interval",
               "runtime.log_interval", "runtime.flip_test")
_WAY_OUT = "use another --work-dir, or --force to start over there (deletes its checkpoints and logs)"


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _comparable(values: dict) -> dict[str, Any]:
    """Leaf keys of a config; a detector threshold of a split on ground-truth boxes changes nothing
    (configs written before its default became None, the protocol's, recorded 0.0): left out."""
    flat = _flatten(values)
    for split in ("train", "val"):
        if flat.get(f"data.{split}.boxes", "gt") == "gt":
            flat.pop(f"data.{split}.det_score_thr", None)
    return flat


def config_changes(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """'key: old -> new' for every differing leaf key not under ``ignore``."""
    a, b = _comparable(old), _comparable(new)
    changes = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) and not any(key == k or key.startswith(k + ".") for k in ignore):
            changes.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return changes


def run_files(work_dir: Path) -> list[Path]:
    """The checkpoints a run left in ``work_dir`` (epoch_N.pth, best.pth)."""
    best = work_dir / BEST_NAME
    return epoch_checkpoints(work_dir) + ([best] if best.is_file() else [])


def check_resume_config(checkpoint: Path, trained: dict | None, config: dict, force: bool) -> None:
    """Refuse to resume ``checkpoint`` with a config that trains something else (unless ``force``)."""
    if force or not isinstance(trained, dict):
        return
    changes = config_changes(trained, config, RESUME_FREE)
    if changes:
        raise HrnextError(f"{checkpoint} was trained with another config ({'; '.join(changes[:3])}"
                          f"{'; ...' if len(changes) > 3 else ''}): resume with the config it was trained with "
                          "(its work dir's config.yaml), use another --work-dir for a new run, or --force to "
                          "continue with the new values")


_HOLDER = Holder("work dir", "training run", "--work-dir", "--force")


def acquire_lock(work_dir: Path, force: bool = False) -> FolderLock:
    """Create ``work_dir/train.lock`` for this process; refuse when another live run holds it."""
    return acquire(work_dir, LOCK_NAME, _HOLDER, force)


def claim_work_dir(work_dir: Path, config: dict, resuming: bool, force: bool) -> FolderLock:
    """Lock ``work_dir`` for a run of ``config`` and check that it is this run's to write.

    ``resuming``: a checkpoint is being continued (its config was checked already). Without it,
    a dir holding checkpoints, or a ``config.yaml`` of another run, is refused unless ``force``,
    which deletes the old run's files first.
    """
    if work_dir.exists() and not work_dir.is_dir():
        raise HrnextError(f"work dir {work_dir} is a file, not a folder: choose another --work-dir")
    check_not_another_commands(work_dir, "--work-dir", "train")  # --force deletes a run's files, never others'
    lock = acquire_lock(work_dir, force)
    try:
        found = run_files(work_dir)
        old_config = read_run_config(work_dir)
        if not force:
            if old_config is not None:
                changes = config_changes(old_config, config, RESUME_FREE if resuming else ())
                if changes:
                    raise HrnextError(f"work dir {work_dir} holds another run ({'; '.join(changes[:3])}"
                                      f"{'; ...' if len(changes) > 3 else ''} against its config.yaml): {_WAY_OUT}")
            if found and not resuming:
                raise HrnextError(f"work dir {work_dir} already holds a run's checkpoints "
                                  f"({', '.join(p.name for p in found[:4])}{', ...' if len(found) > 4 else ''}): "
                                  f"--resume auto continues it; or {_WAY_OUT}")
        elif not resuming:
            _start_over(work_dir, found)
    except BaseException:
        lock.release()
        raise
    return lock


def read_run_config(work_dir: Path) -> dict | None:
    """The config.yaml of the run in ``work_dir``: None where there is none; an unreadable one is a
    dict that differs from every config (treated as another run's)."""
    try:
        values = yaml.safe_load((work_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {"config.yaml": "unreadable"}
    return values if isinstance(values, dict) else {"config.yaml": values}


def _start_over(work_dir: Path, checkpoints: list[Path]) -> None:
    gone = [*checkpoints, *(work_dir / name for name in _RUN_LOGS if (work_dir / name).exists())]
    for path in gone:
        path.unlink(missing_ok=True)
    if (work_dir / "tensorboard").is_dir():
        shutil.rmtree(work_dir / "tensorboard")
        gone.append(work_dir / "tensorboard")
    if gone:
        log.warning("--force: deleted the previous run in %s (%s)", work_dir, ", ".join(p.name for p in gone))


def remove_stale_temp_files(work_dir: Path) -> list[Path]:
    """Delete ``.<checkpoint>.*.tmp`` files that killed saves left behind (the lock says no save of
    another process is under way); returns them."""
    stale = [p for p in work_dir.glob(".*.pth.*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.warning("removed %d temporary file(s) of interrupted checkpoint saves in %s", len(stale), work_dir)
    return stale
