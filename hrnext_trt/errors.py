"""The one exception type users see.

Every check of user input (files, shapes, checkpoints, engines) raises ``HrnextError`` with a
single line that says what is wrong and how to fix it; the CLI prints it without a traceback.
"""

from __future__ import annotations

import errno


class HrnextError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str):
        # One line, always: a multi-line message would be cut by log collectors and CI summaries.
        super().__init__(" ".join(str(message).split()))


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)  # the disk or the quota is full
_STORAGE = (*_NO_ROOM, errno.EROFS)  # ... or the file system takes no writes at all


def first_line(exc: BaseException, limit: int = 400) -> str:
    """The first line of another library's error (ONNX Runtime's and YAML's run to pages), cut at
    ``limit`` characters, which keeps a node's or a file's name whole; its type where it says nothing."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= limit else line[:limit] + " ..."


def write_error(path, exc: OSError, place: str = "another place") -> str:
    """The line for a write of ``path`` that failed with ``exc``: its reason, and to free space where
    the disk is full, else to ``choose {place}``."""
    room = "free some space or " if exc.errno in _NO_ROOM else ""
    return f"cannot write {path}: {exc.strerror or exc}: {room}choose {place}"


def storage_error(exc: BaseException, path=None) -> str | None:
    """One line for an error whose cause is storage that cannot take the write (no space, no quota,
    a read-only file system), however deep (torch.save wraps it in a RuntimeError); ``path`` names
    the file where the error itself does not. None for any other error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _STORAGE:
            name = exc.filename or path
            where = f"cannot write {name}: " if name else "cannot write: "
            return f"{where}{exc.strerror}: free some space (or pick a writable place) and run again"
        exc = exc.__cause__ or exc.__context__
    return None


def raise_storage_error(exc: BaseException, path) -> None:
    """Raise the one line of :func:`storage_error` (``path`` names the file where ``exc`` does not) when
    ``exc`` is storage that took no write; return otherwise, for the caller to re-raise ``exc``."""
    full = storage_error(exc, path)
    if full is not None:
        raise HrnextError(full) from None
