"""Ctrl-C and SIGTERM: a stop within seconds, one line, no child process left behind.

SIGTERM (``kill``, ``timeout``, docker stop, a batch scheduler's end of time) is taken as a Ctrl-C:
the CLI turns it into the same KeyboardInterrupt, so every ``finally`` runs (a video is closed
playable, a staging folder removed, predict writes its summary), and the process ends with the
signal's own exit code (143).

Python runs signal handlers in the main thread between bytecodes, so a Ctrl-C during a long call
into C (a TensorRT build, an ONNX Runtime session) waits for that call to return. The CLI installs
a watchdog: when the main thread has not stopped ``GRACE_S`` seconds after the signal, the watchdog
runs the cleanups registered with :func:`on_interrupt` (kill worker processes, remove staging
folders), prints the same line the CLI prints for a normal interruption, and ends the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

GRACE_S = 3.0
EXIT_CODE = 130  # 128 + SIGINT, what shells report for a Ctrl-C
MESSAGE = "interrupted (Ctrl-C): stopped before the end; only complete files were kept"
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_received: int = signal.SIGINT  # the signal of the interruption under way (a KeyboardInterrupt is Ctrl-C's)
_stopping = False  # a Ctrl-C or SIGTERM arrived: errors it causes on the way out (a killed worker) are its
_owner = os.getpid()  # the process that installed the handlers (forked children inherit them)

_cleanups: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_installed = False
_handled_by_caller = 0  # > 0 while code with its own graceful Ctrl-C handling runs (predict's loop)


@contextlib.contextmanager
def handled_by_caller() -> Iterator[None]:
    """A Ctrl-C that arrives while this block runs belongs to the caller's own handling (finish the
    current batch, close the files): the watchdog leaves it alone."""
    global _handled_by_caller
    with _lock:
        _handled_by_caller += 1
    try:
        yield
    finally:
        with _lock:
            _handled_by_caller -= 1


@contextlib.contextmanager
def on_interrupt(cleanup: Callable[[], None]) -> Iterator[None]:
    """Run ``cleanup`` if the watchdog has to end the process while this block runs. The block's own
    ``finally`` clauses cover every other way out; ``cleanup`` must be safe to run twice."""
    key = id(cleanup)
    with _lock:
        _cleanups[key] = cleanup
    try:
        yield
    finally:
        with _lock:
            _cleanups.pop(key, None)


def run_cleanups() -> None:
    with _lock:
        cleanups = list(_cleanups.values())
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception as exc:  # the process is ending: report, and run the next one
            log.warning("cleanup after Ctrl-C failed: %s", exc)


def message() -> str:
    """The line that ends an interrupted command, naming its signal."""
    return MESSAGE.replace("Ctrl-C", _NAMES.get(_received, "Ctrl-C"))


def exit_code() -> int:
    """128 + the signal's number: what shells report for a process that signal ended."""
    return 128 + int(_received)


def arrived(signum: int) -> None:
    """Record ``signum`` as the interruption under way: the last line names it, the exit code is its."""
    global _received, _stopping
    _received, _stopping = signum, True


def by_sigterm() -> bool:
    return _received == signal.SIGTERM


def stopping() -> bool:
    """Whether a Ctrl-C or SIGTERM has arrived: an error on the way out (a DataLoader worker the same
    signal ended) belongs to the interruption, not to the work."""
    return _stopping


def _children_end(signum, frame) -> None:
    """SIGCHLD while a SIGTERM stops the process: the children end with it, which is no failure."""


def _on_sigterm(signum, frame) -> None:
    if os.getpid() != _owner:  # a forked worker (a DataLoader's): end as SIGTERM's default, quietly
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    arrived(signum)
    # The same SIGTERM (sent to the process group) ends DataLoader workers too: torch's SIGCHLD check
    # would report each as a failure from inside the loader's cleanup, a traceback on the way out.
    # (A Python no-op, not SIG_DFL: a SIGCHLD already pending would find no handler and raise.)
    if signal.getsignal(signal.SIGCHLD) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.signal(signal.SIGCHLD, _children_end)
    raise KeyboardInterrupt  # Ctrl-C's path: every finally runs, and the CLI says which signal it was


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) keeps neither the wake-up pipe, whose signals the parent's
    watchdog would take for its own, nor the SIGTERM handler: it ends as SIGTERM's default."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # forked from another thread than the main one: no wake-up fd to drop there
        pass
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def install_watchdog(grace_s: float = GRACE_S) -> bool:
    """Start the watchdog and take SIGTERM as a Ctrl-C (main thread only, once per process); False
    where the watchdog cannot run."""
    global _installed, _owner
    if _installed or threading.current_thread() is not threading.main_thread():
        return _installed
    _owner = os.getpid()
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # another owner's handler stays
        signal.signal(signal.SIGTERM, _on_sigterm)
    os.register_at_fork(after_in_child=_forget_in_child)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        os.close(read_fd), os.close(write_fd)
        return False
    if previous != -1:  # someone else (an event loop) owns the wake-up fd: leave it to them
        signal.set_wakeup_fd(previous)
        os.close(read_fd), os.close(write_fd)
        return False
    threading.Thread(target=_watch, args=(read_fd, grace_s), name="hrnext-ctrl-c-watchdog", daemon=True).start()
    _installed = True
    return True


def _watch(read_fd: int, grace_s: float) -> None:
    # The C-level signal handler writes each signal's number here, whatever the main thread is doing.
    global _received, _stopping
    while True:
        data = os.read(read_fd, 64)
        if not data:
            return
        signum = next((s for s in (signal.SIGTERM, signal.SIGINT) if s in data), None)
        if signum is not None:
            _stopping = True
        if signum is not None and not _handled_by_caller:
            time.sleep(grace_s)
            # Still running: the main thread is stuck in C code (or ignoring the KeyboardInterrupt).
            _received = signum
            run_cleanups()
            sys.stderr.write(f"error: {message()}\n")
            sys.stderr.flush()
            os._exit(exit_code())
