"""An export folder is whole or absent: atomic re-export, readers that re-hash, Ctrl-C that leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.contract import installed_builders
from hrnext_trt.engines import load_manifest, verify_folder
from hrnext_trt.engines.manifest_check import sha256_file
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners.export_folder import discover_artifacts, load_artifact

from .test_trt_eval import make_tiny_export

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def export_copy(tmp_path_factory, tmp_path):
    """(checkpoint, a private copy of the tiny FP32 export)."""
    checkpoint, engines = make_tiny_export(tmp_path_factory)
    copy = tmp_path / "engines"
    shutil.copytree(engines, copy)
    return checkpoint, copy


def _plant_int8(folder: Path) -> None:
    """Make ``folder`` look like an export that also had INT8: the file and its manifest entry."""
    shutil.copy(folder / "model.onnx", folder / "model_int8.onnx")
    manifest = load_manifest(folder)
    manifest["artifacts"]["model_int8.onnx"] = {**manifest["artifacts"]["model.onnx"], "precision": "int8"}
    (folder / "manifest.json").write_text(json.dumps(manifest.to_dict()))


def _export(checkpoint, out, *extra):
    return CliRunner().invoke(main, ["export-engine", str(checkpoint), "--verify-images", "2", "--out", str(out),
                                     *extra])


def test_reexport_with_fewer_precisions_leaves_no_stale_file(export_copy):
    checkpoint, folder = export_copy
    _plant_int8(folder)
    assert {a.precision for a in discover_artifacts(folder)} == {"fp32", "int8"}
    result = _export(checkpoint, folder)
    assert result.exit_code == 0, result.output
    engine = ["build_fp32.log", "model_fp32.engine"] if installed_builders() else []  # TensorRT for RTX builds here
    assert sorted(p.name for p in folder.iterdir()) == sorted([*engine, "manifest.json", "model.onnx"])
    assert [(a.backend, a.precision) for a in discover_artifacts(folder)] == \
        [("onnxruntime", "fp32")] + ([("tensorrt", "fp32")] if engine else [])
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging or old folder left


def test_export_never_replaces_a_folder_of_other_files(export_copy, tmp_path):
    checkpoint, folder = export_copy
    (folder / "notes.txt").write_text("mine")
    result = _export(checkpoint, folder)
    assert result.exit_code == 2
    assert "holds files an export does not make (notes.txt)" in result.output
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "model.onnx").is_file()
    from hrnext_trt.export import ExportConfig, export_artifacts

    (tmp_path / "a_file").write_text("")
    with pytest.raises(HrnextError, match="is a file, not a folder"):
        export_artifacts(ExportConfig(checkpoint, tmp_path / "a_file"))


def test_truncated_changed_or_mixed_folders_are_refused_in_one_line(export_copy):
    _, folder = export_copy
    onnx_bytes = (folder / "model.onnx").read_bytes()

    (folder / "model.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])  # an interrupted copy
    with pytest.raises(HrnextError, match=r"model.onnx is not the file .*manifest.json describes .*: export again"):
        discover_artifacts(folder)
    with pytest.raises(HrnextError, match="export again"):
        load_artifact(folder / "model.onnx")  # what a command loading one file (predict) calls

    (folder / "model.onnx").write_bytes(onnx_bytes)
    shutil.copy(folder / "model.onnx", folder / "model_fp16.onnx")  # left by another export
    with pytest.raises(HrnextError, match=r"holds model_fp16.onnx, which its manifest.json does not list"):
        discover_artifacts(folder)
    with pytest.raises(HrnextError, match="model_fp16.onnx is not listed in the manifest"):
        load_artifact(folder / "model_fp16.onnx")

    (folder / "model_fp16.onnx").unlink()
    artifact = load_artifact(folder / "model.onnx")
    assert (artifact.precision, artifact.input_size) == ("fp32", (64, 64))
    verify_folder(load_manifest(folder), folder)


def test_onnx_runner_checks_the_manifest_beside_the_file(export_copy):
    from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner

    _, folder = export_copy
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-1] ^= 1  # one flipped bit: same size, different sha256
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(HrnextError, match="sha256 differs"):
        OnnxRuntimeRunner(folder / "model.onnx", "fp32").activate()


def test_truncated_onnx_without_manifest_is_one_line(export_copy):
    _, folder = export_copy
    (folder / "manifest.json").unlink()
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[:1000])
    with pytest.raises(HrnextError, match=r"model.onnx is not a readable ONNX file .*: export again"):
        discover_artifacts(folder)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and proc.name != str(os.getpid()):
                found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def _terminal_sigint() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stuck_state(proc) -> str:
    """Where a process that did not stop is: its threads' states and kernel waits, and who holds its pipes."""
    def read(path):
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            return f"({exc.strerror})"

    root = Path(f"/proc/{proc.pid}")
    threads = [f"{t.name}:{read(t / 'comm')}:{read(t / 'wchan')}:"
               f"{read(t / 'status').split('State:')[-1].split(chr(10))[0].strip()}"
               for t in sorted((root / "task").glob("*"))] if root.exists() else ["gone"]
    pipes = {os.readlink(f"/proc/self/fd/{f.fileno()}") for f in (proc.stdout, proc.stderr) if f and not f.closed}
    holders = []
    for other in Path("/proc").iterdir():
        if other.name.isdigit() and other.name != str(os.getpid()):
            try:
                if pipes & {os.readlink(fd) for fd in (other / "fd").iterdir()}:
                    holders.append(f"{other.name} {read(other / 'cmdline').replace(chr(0), ' ')[:100]}")
            except OSError:
                continue
    return f"threads {threads}; pipe holders {holders}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find left-over processes")
def test_ctrl_c_during_int8_and_fp16_workers(export_copy):
    """Ctrl-C while the FP16 and INT8 workers run: exit 130 within seconds with one line, no worker
    left, stdout closed (a `| tee` ends), the previous export untouched."""
    checkpoint, folder = export_copy
    before = {p.name: sha256_file(p) for p in folder.iterdir()}
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    # A session of its own, like a terminal's foreground job: the SIGINT goes to its process group. A
    # foreground job also receives SIGINT with its default action: in two CI runs the export never saw the
    # SIGINT (its watchdog still waiting on the wake-up pipe), as if ignored or blocked where the test run
    # was started, so the child starts with SIGINT unblocked and at its default, as in a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "hrnext_trt", "export-engine", str(checkpoint), "--fp16",
                             "--int8", "--calib-images", "8", "--verify-images", "2", "--out", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
                            cwd=folder.parent, preexec_fn=_terminal_sigint)
    lines = []
    for line in proc.stderr:  # progress is logged to stderr
        lines.append(line.decode())
        if "running in worker processes" in lines[-1]:
            break
    else:
        pytest.fail(f"the export ended before its workers started: {''.join(lines)}")
    staging = f".{folder.name}.staging-{proc.pid}"
    deadline = time.monotonic() + 60
    while len(_processes_mentioning(staging)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # both workers started (their arguments name the staging folder)
    assert len(_processes_mentioning(staging)) == 2
    time.sleep(1.0)  # inside ModelOpt's imports / calibration
    os.killpg(proc.pid, signal.SIGINT)
    started = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=30)  # returns only once every holder of the pipes is gone
    except subprocess.TimeoutExpired:
        state = _stuck_state(proc)
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"no exit 30 s after Ctrl-C: {state}")
    elapsed = time.monotonic() - started
    assert proc.returncode == 130
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    err_lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert err_lines[-1] == "error: interrupted (Ctrl-C): stopped before the end; only complete files were kept"
    assert not any(line.startswith("error") for line in err_lines[:-1]), stderr.decode()
    assert "Traceback" not in stderr.decode() + stdout.decode()
    assert _processes_mentioning(staging) == []
    assert {p.name: sha256_file(p) for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["engines"]


@pytest.mark.parametrize("signum, name, code", [(signal.SIGINT, "Ctrl-C", 130), (signal.SIGTERM, "SIGTERM", 143)])
def test_watchdog_ends_a_main_thread_stuck_in_c_code(tmp_path, signum, name, code):
    """A Ctrl-C or SIGTERM the main thread does not act on (in real runs: a long call into C code;
    here, for a deterministic test, a handler that swallows it) still ends the process after the
    grace period, with the cleanups run, one line naming the signal and its exit code."""
    marker = tmp_path / "cleaned"
    script = f"""
import signal, sys, time
from pathlib import Path
from hrnext_trt import interrupts
assert interrupts.install_watchdog(grace_s=0.5)
with interrupts.on_interrupt(lambda: Path({str(marker)!r}).write_text("yes")):
    signal.signal({int(signum)}, lambda *args: None)
    print("ready", flush=True)
    time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert proc.returncode == code and marker.read_text() == "yes"
    assert stderr.decode().strip().splitlines() == [
        f"error: interrupted ({name}): stopped before the end; only complete files were kept"]


def test_sigterm_is_taken_as_a_ctrl_c():
    """kill, timeout, docker stop: the main thread gets a KeyboardInterrupt (every finally runs) and
    the line and exit code name SIGTERM (was: the default action, death without a word or cleanup)."""
    script = """
import sys, time
from hrnext_trt import interrupts
assert interrupts.install_watchdog(grace_s=5)
try:
    print("ready", flush=True)  # inside the try: the signal may come at once
    time.sleep(60)
except KeyboardInterrupt:
    print("finally ran", flush=True)
    sys.stderr.write(f"error: {interrupts.message()}\\n")
    sys.exit(interrupts.exit_code())
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 143 and stdout.decode().strip() == "finally ran"
    assert stderr.decode().strip() == ("error: interrupted (SIGTERM): stopped before the end; only complete files "
                                       "were kept")


def test_a_forked_worker_ended_by_sigterm_ends_quietly_and_the_parent_goes_on():
    """DataLoader workers are forked: one ended by SIGTERM (a lingering worker's terminate(), or the
    whole process group's SIGTERM) dies as SIGTERM's default, and its signal is not taken for the
    parent's (was: the inherited handler raised KeyboardInterrupt in the worker, and the shared
    wake-up pipe made the parent's watchdog end the parent 3 s later)."""
    script = """
import multiprocessing, sys, time
from hrnext_trt import interrupts
assert interrupts.install_watchdog(grace_s=0.5)
def child():
    time.sleep(30)
worker = multiprocessing.get_context("fork").Process(target=child)
worker.start()
time.sleep(0.3)
worker.terminate()
worker.join()
time.sleep(2)  # past the watchdog's grace
print(worker.exitcode, interrupts.stopping(), flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stdout.split() == ["-15", "False"], done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
