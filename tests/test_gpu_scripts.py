"""The GPU machine's scripts (scripts/gpu_*.sh, scripts/compare_devices.py): what can be checked
without a GPU: their shell syntax, their usage errors, the device comparison's verdicts, and the
plan's own logic run on the CPU (resume, CPU pinning, waiting for a background export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _this_python_first(**extra) -> dict:
    """The environment with this interpreter's folder first on PATH (the scripts call python3)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **extra}


def _verify(tmp_path, steps: str, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    """scripts/gpu_verify.sh on the CPU, its report in tmp_path/report."""
    return subprocess.run(["bash", str(SCRIPTS / "gpu_verify.sh"), str(tmp_path / "report"), steps],
                          capture_output=True, text=True, env=_this_python_first(DEVICE="cpu", **env), timeout=timeout)


@pytest.mark.parametrize("name", ["gpu_offline_setup.sh", "gpu_verify.sh", "gpu_probe.sh"])
def test_shell_scripts_parse(name):
    subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True)


def test_offline_setup_rejects_unknown_action_and_missing_folder(tmp_path):
    usage = subprocess.run(["bash", str(SCRIPTS / "gpu_offline_setup.sh"), "bogus"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    missing = subprocess.run(["bash", str(SCRIPTS / "gpu_offline_setup.sh"), "install", str(tmp_path / "none")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode == 2 and "fetch" in missing.stderr
    assert not (tmp_path / ".venv-gpu").exists()  # nothing made before the check


def test_gpu_verify_refuses_a_misspelt_step_and_a_python_without_its_environment(tmp_path):
    """A misspelt step ran nothing and exited 0; a python without hrnext-trt's environment passed
    the check, since hrnext_trt imports from the checkout's root with any python."""
    misspelt = _verify(tmp_path, "train,bench-engines")
    assert misspelt.returncode == 2 and "unknown step bench-engines: steps are train," in misspelt.stderr
    bare_python = tmp_path / "bin" / "python3"  # this python without any installed package
    bare_python.parent.mkdir()
    bare_python.write_text(f"#!/bin/sh\nexec {os.path.realpath(sys.executable)} -I -S \"$@\"\n")
    bare_python.chmod(0o755)
    bare = subprocess.run(["bash", str(SCRIPTS / "gpu_verify.sh"), str(tmp_path / "bare"), "train"],
                          capture_output=True, text=True, env={"PATH": f"{bare_python.parent}:/usr/bin:/bin"})
    assert bare.returncode == 2 and "lacks hrnext-trt's environment" in bare.stderr, bare.stderr
    assert not (tmp_path / "report").exists() and not (tmp_path / "bare").exists()


def test_gpu_probe_reports_what_the_plan_assumes(tmp_path):
    # Run with this environment's python3 first on the PATH: torch is there, a GPU is not.
    import torch

    probe = subprocess.run(["bash", str(SCRIPTS / "gpu_probe.sh")], capture_output=True, text=True,
                           env=_this_python_first(), timeout=120)
    assert probe.returncode == 0, probe.stderr
    for section in ("gpu", "machine", "tools", "python3", "nvcc", "libcuda"):
        assert f"== {section}\n" in probe.stdout
    assert f"torch {torch.__version__}: CUDA {torch.version.cuda}" in probe.stdout
    assert "NCCL MISSING; bf16 no GPU seen" in probe.stdout  # a CPU build of torch has no NCCL
    assert "/dev/shm: " in probe.stdout
    assert "onnx MISSING" not in probe.stdout and "CPUs this process may use: " in probe.stdout


def _report(path: Path, aps: dict[str, float], metric: str = "AP", **meta) -> Path:
    rows = [{"backend": b, "precision": "fp32", "status": "ok", metric: ap} for b, ap in aps.items()]
    rows.append({"backend": "tensorrt", "precision": "int8", "status": "ok", metric: 0.1})  # not compared
    meta = {"dataset": "crowdpose", "split": "test", "boxes": "det", "persons": 9, "input_size": [256, 192],
            "metric": metric, **meta}
    path.write_text(json.dumps({"meta": meta, "rows": rows}), encoding="utf-8")
    return path


@pytest.mark.parametrize("second_ap, code", [(0.5205, 0), (0.5025, 1)])
def test_compare_devices_bounds_the_fp32_ap_difference(tmp_path, second_ap, code):
    gpu = _report(tmp_path / "gpu.json", {"pytorch": 0.521, "onnxruntime": 0.521})
    cpu = _report(tmp_path / "cpu.json", {"pytorch": second_ap, "onnxruntime": 0.521})
    run = subprocess.run([sys.executable, str(SCRIPTS / "compare_devices.py"), str(gpu), str(cpu),
                          "--max-ap-diff", "0.001"], capture_output=True, text=True)
    assert run.returncode == code, run.stdout
    assert "pytorch" in run.stdout and "onnxruntime" in run.stdout


def test_compare_devices_reads_each_reports_metric_and_refuses_other_evaluations(tmp_path):
    """An MPII report compares PCKh Mean (was: a TypeError on the missing AP); a group without a score
    is no score; reports of another dataset are refused (was: "diff 0.0000", exit 0)."""
    gpu = _report(tmp_path / "gpu.json", {"pytorch": 88.52, "onnxruntime": None}, "Mean", dataset="mpii")
    cpu = _report(tmp_path / "cpu.json", {"pytorch": 88.5205, "onnxruntime": 88.0}, "Mean", dataset="mpii")
    run = subprocess.run([sys.executable, str(SCRIPTS / "compare_devices.py"), str(gpu), str(cpu)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "pytorch      fp32 Mean 88.5200 vs 88.5205" in run.stdout, run.stdout + run.stderr
    assert "onnxruntime" not in run.stdout and "Traceback" not in run.stderr
    coco = _report(tmp_path / "coco.json", {"pytorch": 0.7}, dataset="coco", persons=12)
    run = subprocess.run([sys.executable, str(SCRIPTS / "compare_devices.py"), str(gpu), str(coco)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "are of different evaluations (dataset " \
        "'mpii' vs 'coco'; persons 9 vs 12; metric 'Mean' vs 'AP')" in run.stderr, run.stderr


def test_compare_devices_fails_when_nothing_is_common(tmp_path):
    gpu = _report(tmp_path / "gpu.json", {"pytorch": 0.5})
    cpu = _report(tmp_path / "cpu.json", {"onnxruntime": 0.5})
    run = subprocess.run([sys.executable, str(SCRIPTS / "compare_devices.py"), str(gpu), str(cpu)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "no FP32 backend scored in both" in run.stdout


def test_amp_drift_measures_each_dtype_against_float32(tmp_path):
    # Fresh hrnext_tiny weights on the bundled coco-mini at 64x48 (seconds on a CPU): each row is a
    # real autocast step vs float32, so fp16 (11 mantissa bits) lands nearer float32 than bf16 (8).
    run = subprocess.run([sys.executable, str(SCRIPTS / "amp_drift.py"), "--batch", "2", "--out", str(tmp_path),
                          "--cfg-options", "data.input_size=[64,48]"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "heatmaps rel err" in run.stdout and (tmp_path / "amp_drift.md").is_file()
    rows = {(r["mode"], r["dtype"]): r for r in json.loads((tmp_path / "amp_drift.json").read_text())["rows"]}
    assert set(rows) == {(m, d) for m in ("train", "eval") for d in ("fp16", "bf16")}
    assert 0 < rows["eval", "fp16"]["heatmap_rel_err"] < rows["eval", "bf16"]["heatmap_rel_err"] < 0.05
    for dtype in ("fp16", "bf16"):
        train = rows["train", dtype]
        assert -1 <= train["grad_cosine"] <= 1 and 0 <= train["same_peak_pct"] <= 100
        assert train["floor_heatmap_rel_err"] < train["heatmap_rel_err"]  # autocast rounds every layer
    assert rows["train", "bf16"]["loss_scale"] == 1 and 1 <= rows["train", "fp16"]["loss_scale"] <= 2 ** 16


def test_amp_drift_bad_batch_is_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPTS / "amp_drift.py"), "--batch", "1", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and ">= 2" in run.stderr
    assert not any(tmp_path.iterdir())


def _bundle(*args, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPTS / "offline_bundle.py"), *map(str, args)], capture_output=True,
                          text=True, **kwargs)


def test_offline_bundle_packs_within_the_transfer_limit_and_gathers_back(tmp_path):
    # 2.5 MiB, 1.2 MiB and 0.3 MiB files under a 1 MiB limit: the first is split in three, the
    # second in two; every carry folder stays within the limit and gather restores each file.
    rng = np.random.default_rng(0)
    files = {"big-1.0-py3-none-any.whl": 2.5, "mid.tar.gz": 1.2, "small-2.0-py3-none-any.whl": 0.3}
    folder = tmp_path / "whl"
    folder.mkdir()
    for name, mib in files.items():
        (folder / name).write_bytes(rng.bytes(int(mib * 2 ** 20)))
    original = {name: (folder / name).read_bytes() for name in files}
    packed = _bundle("pack", folder, "--carry-mb", 1)
    assert packed.returncode == 0, packed.stderr
    carries = sorted(p for p in folder.iterdir())
    assert all(p.is_dir() and p.name.startswith("carry") for p in carries)
    assert all(sum(f.stat().st_size for f in c.iterdir()) <= 2 ** 20 for c in carries)
    names = sorted(f.name for c in carries for f in c.iterdir())
    assert names.count("big-1.0-py3-none-any.whl.part1of3") == 1 and "mid.tar.gz.part2of2" in names
    # A missing transfer is one clear line, and nothing is joined from what came.
    lost = next(f for c in carries for f in c.iterdir() if f.name.endswith("part2of3"))
    kept = lost.read_bytes()
    lost.unlink()
    missing = _bundle("gather", folder)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "part(s) 2 of 3" in missing.stderr
    assert not (folder / "big-1.0-py3-none-any.whl").exists()
    (folder / lost.name).write_bytes(kept)
    gathered = _bundle("gather", folder)
    assert gathered.returncode == 0, gathered.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == original


def test_offline_bundle_check_names_what_is_missing(tmp_path):
    # This environment installed hrnext-trt with everything it needs: met. A wheel brought for a
    # package that did not get installed: named, and the exit code says so.
    met = _bundle("check", tmp_path)
    assert met.returncode == 0, met.stderr
    (tmp_path / "not_here_pkg-1.0-py3-none-any.whl").write_bytes(b"")
    unmet = _bundle("check", tmp_path)
    assert unmet.returncode == 2 and "not-here-pkg is not installed" in unmet.stderr


def test_offline_bundle_venv_sees_the_packages_of_a_python_that_is_itself_a_venv(tmp_path):
    # The lent GPU machines' python3 is a virtual environment holding PyTorch: a plain
    # --system-site-packages venv made from it would not see torch.
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    site_dir = next((outer / "lib").glob("python*/site-packages"))
    (site_dir / "machine_only_module.py").write_text("VALUE = 42\n")
    (site_dir / "nvidia" / "cu13" / "lib").mkdir(parents=True)  # CUDA's library wheels, found by path
    (site_dir / "nvidia" / "cu13" / "lib" / "libcudart.so.13").write_bytes(b"")
    made = subprocess.run([str(outer / "bin" / "python"), str(SCRIPTS / "offline_bundle.py"), "venv",
                           str(tmp_path / "inner")], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    seen = subprocess.run([str(tmp_path / "inner" / "bin" / "python"), "-c",
                           "import machine_only_module as m; print(m.VALUE)"], capture_output=True, text=True)
    assert seen.stdout.strip() == "42", seen.stderr
    # ...and a package installed in it that looks beside itself for them (onnxruntime-gpu) finds them.
    inner_site = next((tmp_path / "inner" / "lib").glob("python*/site-packages"))
    assert (inner_site / "nvidia" / "cu13" / "lib" / "libcudart.so.13").is_file()


def test_gpu_verify_resume_step_kills_every_process_and_resumes_exactly(tmp_path):
    # The plan's resume step on the CPU (DEVICE=cpu, hrnext_tiny at 64x48, 3 epochs): a run started
    # through torch.distributed.run is killed after epoch 2's checkpoint (its worker runs in a session of
    # its own, so the launcher's death alone would leave it training), then resumed, and its
    # weights must equal an uninterrupted run's.
    run = _verify(tmp_path, "resume", timeout=600, RESUME_EPOCHS="3",
                  TRAIN_OPTIONS="model.arch=hrnext_tiny data.input_size=[64,48] data.num_workers=0 "
                  "model.activation_checkpointing=false")
    status = (tmp_path / "report" / "status.txt").read_text()
    log = (tmp_path / "report" / "resume.log").read_text()
    assert status.startswith("resume ok"), log[-3000:]
    assert "resumed from" in log and "max abs weight difference: 0" in log
    assert "1 x cpu (DDP, gloo)" in log  # one process under the launcher still steps through DDP
    assert "killed after" in log and len(list((tmp_path / "report" / "resume_killed").glob("epoch_*.pth"))) == 3
    assert run.returncode == 0


def test_gpu_verify_pins_itself_to_half_of_the_cpus(tmp_path):
    # The background export and the GPU steps share a machine: each half of its CPUs, by taskset.
    cpus = sorted(os.sched_getaffinity(0))  # what this process may use (not always from CPU 0)
    upper = _verify(tmp_path, "none", PIN="upper")
    assert upper.returncode == 0, upper.stderr
    assert f"CPUs {','.join(map(str, cpus[len(cpus) // 2:]))}\n" in upper.stdout
    bad = _verify(tmp_path, "none", PIN="middle")
    assert bad.returncode == 2 and "use PIN=upper or PIN=lower" in bad.stderr


def test_gpu_verify_steps_that_read_the_export_wait_for_it_within_a_bound(tmp_path):
    # No export at all: the step fails at once and says which step makes it.
    _verify(tmp_path, "bench_engines")
    log = (tmp_path / "report" / "bench_engines.log").read_text()
    assert "bench_engines FAILED" in (tmp_path / "report" / "status.txt").read_text()
    assert "run the export step first" in log, log
    # An export still running (a process of this report's export folder): waited for, at most EXPORT_WAIT.
    out = (tmp_path / "report").resolve() / "engines_coco"
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--out", str(out)])
    try:
        waited = _verify(tmp_path, "bench_engines", EXPORT_WAIT="5")
    finally:
        busy.kill()
        busy.wait()
    log = (tmp_path / "report" / "bench_engines.log").read_text()
    assert "waiting for the export" in log and "still runs after 5 s" in log, log
    assert waited.returncode == 0  # a failed step is recorded; the plan goes on


def test_train_speed_reads_a_gpu_run_log(tmp_path):
    # A GPU run's log as the trainer writes it: the first epoch's peak memory holds cuDNN's algorithm
    # search, left out with its timing; the DDP backend is named in its own column.
    from hrnext_trt.training import load_config
    from hrnext_trt.training.config import save_config
    from hrnext_trt.training.logging import LOG_NAME
    from hrnext_trt.training.work_dir import CONFIG_NAME

    work = tmp_path / "train_b32"
    work.mkdir()
    save_config(load_config(SCRIPTS.parent / "train" / "hrnext_s_coco_256x192.yaml", ["data.batch_size=32"]),
                work / CONFIG_NAME)
    records = [{"kind": "event", "event": "start", "device": "cuda", "world_size": 1, "dist_backend": "nccl",
                "precision": "bfloat16"}]
    for epoch, (step_s, memory) in enumerate([(0.9, 30000.0), (0.25, 21000.0), (0.2, 21500.0)], 1):
        records.append({"kind": "epoch", "epoch": epoch, "step_s": step_s, "data_wait_s": 0.01,
                        "max_memory_mib": memory})
    (work / LOG_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))
    out = subprocess.run([sys.executable, str(SCRIPTS / "train_speed.py"), str(work), "--json",
                          str(tmp_path / "speed.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert row["max_memory_mib"] == 21500.0 and row["epochs_timed"] == 2 and row["dist_backend"] == "nccl"
    assert row["step_ms"] == pytest.approx(225.0) and row["images_per_s"] == pytest.approx(32 / 0.225)
    header, row_line = [line.split() for line in out.stdout.splitlines() if line.startswith(("run ", "train_b32"))]
    assert row_line == ["train_b32", "cuda", "bfloat16", "32", "1", "nccl", "225.0", "4.44", "142.2", "10.0",
                        "21500"]
    assert header[:3] == ["run", "device", "precision"] and header[-2:] == ["peak", "MiB"]
