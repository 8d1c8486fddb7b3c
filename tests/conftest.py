"""Shared test set-up: where ``../shared`` is, and one CPU thread per xdist worker."""

from __future__ import annotations

import os
from pathlib import Path

# Two xdist workers on two cores: one intra-op thread each, or they fight for the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HRNEXT_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures"


def pytest_configure(config):
    if not DATA.is_dir():
        raise pytest.UsageError(f"test data not found at {DATA}: put the project's shared/ beside the checkout "
                                "or set HRNEXT_SHARED")


# The session's fixture export takes two minutes on a slow 2-core machine. Under xdist its users come
# first: xdist's load scheduling hands each worker a chunk of consecutive tests to start with, so one
# worker gets them all and builds the export while the other runs the rest (users spread over both
# workers left one of them waiting on the export's lock).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # every worker collects, and reorders, alike
        items.sort(key=lambda item: "fixture_export" not in getattr(item, "fixturenames", ()))  # stable


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


FIXTURE_EXPORT_ARGS = ("--arch", "hrnext_tiny", "--joints", "14", "--fp16", "--int8", "--calib-dataset", "coco",
                       "--calib-images", "24", "--verify-images", "8", "--batch", "1,4,8")


@pytest.fixture(scope="session")
def fixture_export(tmp_path_factory):
    """``hrnext-trt export-engine`` of the paper-layout fixture (FP32, FP16, INT8, and their engines where a
    builder is installed), made once per test run: (folder, printed output).

    Under xdist every worker asks; a lock in the run's shared temp folder lets the first build it and the
    others read it, so the export and its three engine builds are paid once.
    """
    import fcntl
    import json
    import traceback

    from click.testing import CliRunner

    from hrnext_trt.cli import main

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, printed, done = root / "fixture_export", root / "fixture_export.out", root / "fixture_export.json"
    with open(root / "fixture_export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            args = [str(FIXTURES / "hrnext_tiny_crowdpose.pth"), *FIXTURE_EXPORT_ARGS,
                    "--calib-data", str(DATA / "coco-mini"), "--out", str(out)]
            result = CliRunner().invoke(main, ["export-engine", *args])
            failure = "" if result.exception is None or result.exit_code == 2 else \
                "".join(traceback.format_exception(*result.exc_info))
            printed.write_text(result.output + failure)
            done.write_text(json.dumps({"exit_code": result.exit_code}))
    exit_code = json.loads(done.read_text())["exit_code"]
    assert exit_code == 0, printed.read_text()
    return out, printed.read_text()


@pytest.fixture()
def gpu_machine_with_pycuda(tmp_path, monkeypatch):
    """A machine whose NVIDIA driver is there (``nvidia_gpu_present``) and whose pycuda is ``driver_source``:
    the GPU's presence and pycuda's ``driver`` module are the injected parts, everything else is real.
    The injected modules leave with the test (monkeypatch then puts back any real ones)."""
    import sys

    from hrnext_trt import contract
    from hrnext_trt.engines import cuda_device
    from hrnext_trt.export import exporter

    def make(driver_source: str) -> None:
        package = tmp_path / "fake_pycuda" / "pycuda"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "driver.py").write_text(driver_source)
        monkeypatch.syspath_prepend(str(package.parent))
        for name in [m for m in sys.modules if m == "pycuda" or m.startswith("pycuda.")]:
            monkeypatch.delitem(sys.modules, name)
        for module in (contract, cuda_device, exporter):
            monkeypatch.setattr(module, "nvidia_gpu_present", lambda: True)

    yield make
    for name in [m for m in sys.modules if m == "pycuda" or m.startswith("pycuda.")]:
        del sys.modules[name]
