"""Checkpoints that survive a kill: atomic writes, RNG state, finding the latest to resume.

A checkpoint is written to a temporary file in the target's folder, flushed to disk and renamed
over the target (``os.replace`` is atomic on POSIX and Windows), so a crash or a kill during
the write leaves the previous file as it was. The dict follows docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import os
import random
import re
import secrets
from pathlib import Path
from typing import Any

from hrnext_trt.errors import HrnextError, raise_storage_error

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pth$")
BEST_NAME = "best.pth"  # the best-AP checkpoint of a run


def epoch_checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch}.pth"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` that never leaves a half-written ``path`` behind."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: a name of this save's own; mode 0666 under the umask, as any new file (mkstemp's 0600
    # hid the weights from a group sharing the work dir).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):  # a full disk: the checkpoint's name, not torch's "unexpected pos"
            raise_storage_error(exc, path)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; the rename is durable there already
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def capture_rng_state() -> dict:
    """Python, numpy, torch (and CUDA) generator states of this process.

    Plain lists and tensors only, so ``torch.load(weights_only=True)`` reads them.
    """
    import numpy as np
    import torch

    _, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        # This process's GPU only (the current device: each rank's own): a state per visible GPU
        # could not be restored where fewer are visible (another machine, CUDA_VISIBLE_DEVICES).
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(n["key"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # checkpoints that kept every visible GPU's state
            cuda = cuda[torch.cuda.current_device()] if torch.cuda.current_device() < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda)


def epoch_checkpoints(work_dir: str | Path) -> list[Path]:
    """The ``epoch_N.pth`` files of ``work_dir``, by N."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in work_dir.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The ``epoch_N.pth`` with the highest N in ``work_dir``, or None."""
    found = epoch_checkpoints(work_dir)
    return found[-1] if found else None


def latest_training_state(work_dir: str | Path) -> Path | None:
    """What ``--resume auto`` continues: the latest ``epoch_N.pth``, or ``best.pth`` where it holds a
    later epoch or is the only checkpoint (a run with evaluations more often than checkpoints,
    killed after an evaluation's new best and before its next ``epoch_N.pth``). Both hold the whole
    training state; an epoch's file wins a tie (it may owe that epoch's evaluation, which is redone)."""
    from hrnext_trt.models.checkpoint import read_checkpoint  # torch

    latest = find_latest_checkpoint(work_dir)
    best = Path(work_dir) / BEST_NAME
    if not best.is_file():
        return latest
    if latest is None:
        return best
    best_epoch = read_checkpoint(best).get("epoch", 0)
    return best if best_epoch > int(_EPOCH_FILE.match(latest.name).group(1)) else latest


def load_training_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint to resume from: it must be this project's and carry training state."""
    from hrnext_trt.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, read_checkpoint  # torch

    ckpt = read_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HrnextError(f"{path} is not an hrnext-trt training checkpoint: use --load-from for weights only")
    if ckpt.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise HrnextError(f"{path} has checkpoint format_version {ckpt.get('format_version')}, this hrnext-trt "
                          f"resumes {CHECKPOINT_FORMAT_VERSION}: resume with the version that wrote it")
    missing = [k for k in ("optimizer", "scheduler", "rng", "epoch", "iteration") if k not in ckpt]
    if missing:
        raise HrnextError(f"{path} holds weights only (no {', '.join(missing)}): use --load-from, not --resume")
    return ckpt
