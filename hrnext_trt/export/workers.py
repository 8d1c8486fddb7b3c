"""FP16 conversion and INT8 quantization, each in a worker process of its own.

Why processes: AutoCast is single-threaded Python (minutes on hrnext_s), so running it beside
INT8 calibration overlaps the two on a multi-core machine; and ModelOpt's calibration calls back
into Python from C++, where a Ctrl-C aborts the whole process (SIGABRT) instead of raising. So the
main process only waits, and a Ctrl-C there stops the workers.

A worker is ``python -m hrnext_trt.export.workers JOB ARGS...`` in a session of its own (the
terminal's Ctrl-C reaches only the main process, which kills it), with stdout and stderr in a log
file (it never holds the caller's stdout: a ``| tee`` ends when the main process does), whose
``warning:`` lines the main process logs again, and on Linux it dies with its parent even if the
parent is killed outright.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from hrnext_trt import interrupts
from hrnext_trt.errors import HrnextError

log = logging.getLogger(__name__)

POLL_S = 0.2
JOBS = ("fp16", "int8")


def run_jobs(jobs: dict[str, list[str]], log_dir: Path) -> dict[str, float]:
    """Run ``{name: [job, arg, ...]}`` in parallel worker processes; when all succeeded, the seconds
    each took. One failing stops the others and raises its error line; any exception here (Ctrl-C)
    stops them all."""
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def stop_all() -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a zombie the kernel will reap when we exit
                pass

    with interrupts.on_interrupt(stop_all):
        try:
            for name, argv in jobs.items():
                logs[name] = log_dir / f"worker_{name}.log"
                with open(logs[name], "wb") as out:
                    procs[name] = subprocess.Popen(
                        [sys.executable, "-m", "hrnext_trt.export.workers", *argv], stdin=subprocess.DEVNULL,
                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=_worker_env())
            pending = dict(procs)
            while pending:
                for name, proc in list(pending.items()):
                    if proc.poll() is None:
                        continue
                    del pending[name]
                    seconds[name] = round(time.perf_counter() - started, 2)
                    if proc.returncode != 0:
                        raise HrnextError(f"{name} worker failed: {_error_line(logs[name], proc.returncode)}")
                    for line in _warning_lines(logs[name]):  # the log is deleted with its folder
                        log.warning("%s", line)
                time.sleep(POLL_S)
        finally:
            stop_all()
    return seconds


def _worker_env() -> dict:
    # The worker must import this very package (a checkout on PYTHONPATH, or the installed one).
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _error_line(log_path: Path, returncode: int) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    if returncode < 0:
        return f"killed by signal {-returncode} (out of memory?)"
    return f"exit code {returncode}, last output: {lines[-1] if lines else '(none)'}"


def _warning_lines(log_path: Path) -> list[str]:
    """The package's warnings a worker printed (``main`` prints them as ``warning: ...`` lines)."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line[len("warning: "):] for line in lines if line.startswith("warning: ")]


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _run(job: str, args: list[str]) -> None:
    import numpy as np
    import onnx

    from hrnext_trt.export.precision import convert_fp16, quantize_int8

    if job == "fp16":
        src, dst = args
        onnx.save(convert_fp16(Path(src)), dst)
    elif job == "int8":
        src, crops, dst, method = args
        onnx.save(quantize_int8(Path(src), np.load(crops), method), dst)
    else:
        raise HrnextError(f"unknown worker job {job!r}: one of {', '.join(JOBS)}")


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when a worker stops
    _die_with_parent()
    # The package's warnings (not ModelOpt's chatter) as lines the main process passes on to the user.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger("hrnext_trt").addHandler(handler)
    try:
        _run(argv[0], argv[1:])
    except HrnextError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    except Exception as exc:  # the traceback goes to the worker's log; the main process shows one line
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
