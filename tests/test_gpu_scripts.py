"""The GPU machine's scripts (scripts/gpu_*.sh, scripts/compare_devices.py): what can be checked
without a GPU: their shell syntax, their usage errors, and the device comparison's verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize("name", ["gpu_offline_setup.sh", "gpu_verify.sh"])
def test_shell_scripts_parse(name):
    subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True)


def test_offline_setup_rejects_unknown_action_and_missing_folder(tmp_path):
    usage = subprocess.run(["bash", str(SCRIPTS / "gpu_offline_setup.sh"), "bogus"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    missing = subprocess.run(["bash", str(SCRIPTS / "gpu_offline_setup.sh"), "install", str(tmp_path / "none")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode == 2 and "fetch" in missing.stderr
    assert not (tmp_path / ".venv-gpu").exists()  # nothing made before the check


def _report(path: Path, aps: dict[str, float]) -> Path:
    rows = [{"backend": b, "precision": "fp32", "status": "ok", "AP": ap} for b, ap in aps.items()]
    rows.append({"backend": "tensorrt", "precision": "int8", "status": "ok", "AP": 0.1})  # not compared
    path.write_text(json.dumps({"rows": rows}), encoding="utf-8")
    return path


@pytest.mark.parametrize("second_ap, code", [(0.5205, 0), (0.5025, 1)])
def test_compare_devices_bounds_the_fp32_ap_difference(tmp_path, second_ap, code):
    gpu = _report(tmp_path / "gpu.json", {"pytorch": 0.521, "onnxruntime": 0.521})
    cpu = _report(tmp_path / "cpu.json", {"pytorch": second_ap, "onnxruntime": 0.521})
    run = subprocess.run([sys.executable, str(SCRIPTS / "compare_devices.py"), str(gpu), str(cpu),
                          "--max-ap-diff", "0.001"], capture_output=True, text=True)
    assert run.returncode == code, run.stdout
    assert "pytorch" in run.stdout and "onnxruntime" in run.stdout


def test_compare_devices_fails_when_nothing_is_common(tmp_path):
    gpu = _report(tmp_path / "gpu.json", {"pytorch": 0.5})
    cpu = _report(tmp_path / "cpu.json", {"onnxruntime": 0.5})
    run = subprocess.run([sys.executable, str(SCRIPTS / "compare_devices.py"), str(gpu), str(cpu)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "no FP32 backend" in run.stdout


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
