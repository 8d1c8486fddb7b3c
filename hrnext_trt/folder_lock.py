"""A folder written by one run at a time: an exclusive lock file in it (pid, host, start time).

A second run is refused while the first lives; a lock whose process is gone (a killed run) is
stale and taken over with a warning. Training's work dir and predict's and visualize's output
folders use it, each with its own file name and wording (``Holder``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.errors import HrnextError, write_error

log = logging.getLogger(__name__)

_WRITING_S = 5.0  # an empty lock younger than this is being written by its run


@dataclass(frozen=True)
class Holder:
    """How the errors name the folder and its runs, e.g. ("work dir", "training run", "--work-dir")."""

    folder: str
    run: str
    option: str
    force_flag: str | None = None  # the flag that takes over a lock this machine cannot check


class FolderLock:
    """This process's claim on a folder; ``release()`` (or ``with``) gives it back."""

    def __init__(self, path: Path):
        self.path = path

    def release(self) -> None:
        # Only our own lock: a forced takeover may have replaced it.
        if _read(self.path).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(folder: Path, name: str, holder: Holder, force: bool = False) -> FolderLock:
    """Create ``folder/name`` for this process; refuse when another live run holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    # Runs starting at once take turns (a kernel lock on the folder, released at once): a stale lock
    # is read, removed and replaced by one of them only (two re-queued jobs both took it over).
    with _turn(folder):
        return _acquire(folder, folder / name, holder, force)


@contextlib.contextmanager
def _turn(folder: Path) -> Iterator[None]:
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):  # no fcntl (Windows) or no such lock here: the exclusive create alone
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock (some network mounts)
            pass
        yield
    finally:
        os.close(fd)  # closing releases the turn


def _acquire(folder: Path, path: Path, holder: Holder, force: bool) -> FolderLock:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "proc_start": _process_start(os.getpid())}
    for _ in range(3):  # a stale lock is removed, then the exclusive create is tried again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read(path)
            # An empty lock: its run is writing it this instant, or (older) died before it could.
            live = _is_live(info) if info else _age_s(path) < _WRITING_S
            who = f"pid {info.get('pid')} on {info.get('host')}, since {info.get('started')}"
            if live:
                raise HrnextError(f"{holder.folder} {folder} is in use by another {holder.run} ({who}): wait for it "
                                  f"to finish or use another {holder.option}") from None
            if live is None and not force:
                forced = f" or pass {holder.force_flag}" if holder.force_flag else ""
                raise HrnextError(f"{holder.folder} {folder} is locked by a run this machine cannot check "
                                  f"({who or path}): if it is over, delete {path}{forced}; else use another "
                                  f"{holder.option}") from None
            log.warning("removing the stale lock %s of a run that is gone (%s)", path, who)
            path.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
        except OSError as exc:  # a full disk: no empty lock may stay to refuse every later run
            path.unlink(missing_ok=True)
            raise HrnextError(write_error(path, exc, f"another {holder.option}")) from None
        return FolderLock(path)
    raise HrnextError(f"cannot lock {holder.folder} {folder}: {path} keeps reappearing; is another run starting "
                      "there?")


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), which tells a live pid from a reused one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_live(info: dict) -> bool | None:
    """True/False for a lock of this host; None when it cannot be told (another host, no pid)."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    if sys.platform == "win32":  # os.kill would terminate the process there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    started = info.get("proc_start")
    return started is None or _process_start(pid) in (None, started)
