"""Project-level facts: the README's set-up commands, CI, keypoint metadata, the CLI surface."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import COCO, CROWDPOSE, MPII, OCHUMAN, POSETRACK, get_meta, meta_for_joints
from tests.conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.startswith("    python3 -m venv")]


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    tests_cmd = [c for c in commands if "pytest" in c]
    assert len(tests_cmd) == 1, "README must state exactly one test set-up command"
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests_cmd[0] in [line.strip() for line in ci_lines]


def test_readme_main_job_installs_non_editable_and_runs_demo():
    main = [c for c in _readme_commands() if "pytest" not in c]
    assert len(main) == 1
    assert re.search(r"pip install [^&]*--no-build-isolation \. ", main[0]), "main job must install the package itself"
    assert "hrnext-trt demo" in main[0]


def test_flip_pairs_follow_the_names():
    assert CROWDPOSE.flip_pairs == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))  # the spec's pairs
    assert COCO.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    # MPII: HRNet's pairs; PoseTrack: COCO's, without the eyes (head_bottom/head_top are central).
    assert set(MPII.flip_pairs) == {(5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12)}
    assert POSETRACK.flip_pairs == COCO.flip_pairs[1:]
    for meta in (COCO, CROWDPOSE, OCHUMAN, MPII, POSETRACK):
        perm = meta.flip_index
        assert sorted(perm) == list(range(meta.num_joints))
        assert all(perm[perm[j]] == j for j in range(meta.num_joints))  # an involution


def test_metadata_matches_the_spec():
    assert CROWDPOSE.num_joints == 14 and COCO.num_joints == 17 and OCHUMAN.num_joints == 17
    assert [round(s * 10, 2) for s in CROWDPOSE.sigmas] == [
        .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]
    assert CROWDPOSE.eval_mode == "crowdpose" and OCHUMAN.eval_mode == "coco"
    assert len(CROWDPOSE.upper_body) + len(CROWDPOSE.lower_body) == 14
    assert MPII.num_joints == 16 and POSETRACK.num_joints == 17 and MPII.eval_mode == "pckh"
    assert POSETRACK.keypoint_names[:3] == ("nose", "head_bottom", "head_top")
    for meta in (COCO, CROWDPOSE, MPII, POSETRACK):
        assert all(0 <= a < meta.num_joints and 0 <= b < meta.num_joints for a, b in meta.skeleton)


def test_unknown_dataset_and_joint_count_are_one_line_errors():
    with pytest.raises(HrnextError, match="unknown dataset 'lsp'"):
        get_meta("lsp")
    with pytest.raises(HrnextError, match="no dataset has 15 joints"):
        meta_for_joints(15)
    assert meta_for_joints(14) is CROWDPOSE and meta_for_joints(16) is MPII


def test_cli_lists_every_stage_without_importing_torch():
    code = ("import sys; from click.testing import CliRunner; from hrnext_trt.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); print(r.output); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("summary", "convert", "evaluate", "visualize", "train", "export-engine", "trt-eval", "bench", "demo"):
        assert name in out
    assert out.strip().endswith("False"), "--help must not import torch"


def test_cpu_emulation_script_runs_tests_on_an_avx2_only_cpu(tmp_path):
    """scripts/cpu_emulation_check.sh: where QEMU is installed, a test file runs on the emulated AVX2-only
    EPYC and PyTorch sees that CPU; where it is not, one line says what to install."""
    import shutil

    script = REPO / "scripts" / "cpu_emulation_check.sh"
    env = {"PATH": f"{REPO / '.venv' / 'bin'}:{tmp_path}:/usr/bin:/bin", "PYTHON": sys.executable,
           "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    if shutil.which("qemu-x86_64-static") is None:
        done = subprocess.run(["bash", str(script), "-q", "tests/test_codec.py"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.strip() == "error: qemu-x86_64-static not found: apt-get install qemu-user-static"
        return
    done = subprocess.run(["bash", str(script), "-q", "tests/test_codec.py"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "emulated EPYC-Rome: PyTorch CPU capability AVX2" in done.stdout and " passed" in done.stdout
    assert "TCG doesn't support" not in done.stderr


def test_imports_run_in_the_documented_direction():
    """ARCHITECTURE.md's import chain (contract -> ... -> cli), held for every import of the package,
    at module top or inside a function: no module imports one of a later layer."""
    import ast

    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    chain = re.search(r"Imports run in one direction: (.*?)\.\n\n", text, re.S).group(1)
    layers = [step.strip().split("/") for step in " ".join(chain.split()).split("->")]
    rank = {name: i for i, names in enumerate(layers) for name in names}
    package = REPO / "hrnext_trt"
    assert set(rank) <= {p.stem for p in package.iterdir() if not p.name.startswith("_")}, layers
    wrong = []
    for path in package.rglob("*.py"):
        own = path.relative_to(package).with_suffix("").parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hrnext_trt"):
                names = [node.module] if node.module != "hrnext_trt" else [f"hrnext_trt.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "hrnext_trt" and len(parts) > 1 and rank.get(parts[1], -1) > rank.get(own, 99):
                    wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_output_folder_marks_are_the_commands_own_file_names():
    from hrnext_trt.manifest import MANIFEST_NAME
    from hrnext_trt.predict.outputs import SUMMARY_NAME
    from hrnext_trt.reports import OUTPUT_MARKS
    from hrnext_trt.training.logging import LOG_NAME
    from hrnext_trt.training.work_dir import LOCK_NAME
    from hrnext_trt.visualize import LISTING_NAME

    assert dict(OUTPUT_MARKS) == {MANIFEST_NAME: "export-engine", "trt_eval.json": "trt-eval", SUMMARY_NAME: "predict",
                                  LISTING_NAME: "visualize", LOG_NAME: "train", LOCK_NAME: "train"}
