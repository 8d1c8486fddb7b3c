"""The sample data shipped inside the package, so the demo runs on a fresh install.

Copies of COCO, CrowdPose and OCHuman samples in each dataset's own layout (see their licences
in the README). Tests read the same data from ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_ROOT = Path(__file__).resolve().parent / "bundled_data"


def bundled_dataset_root(name: str) -> Path:
    """Root of the bundled ``coco-mini``, ``crowdpose-mini`` or ``ochuman-mini`` dataset."""
    root = BUNDLED_ROOT / name
    if not root.is_dir():
        from hrnext_trt.errors import HrnextError

        raise HrnextError(f"bundled dataset {name!r} is missing from {BUNDLED_ROOT}: reinstall hrnext-trt")
    return root
