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


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
