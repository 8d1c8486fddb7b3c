"""The sample data shipped inside the package, so the demo runs on a fresh install.

Copies of COCO, CrowdPose and OCHuman samples in each dataset's own layout (see their licences
in the README). Tests read the same data from ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

from hrnext_trt.errors import HrnextError

BUNDLED_ROOT = Path(__file__).resolve().parent / "bundled_data"
# The training recipes of the top-level ``train/`` folder: installed into the package as
# ``hrnext_trt/recipes`` (setup.py maps it), read in place from a checkout.
_RECIPE_ROOTS = (Path(__file__).resolve().parent / "recipes", Path(__file__).resolve().parents[1] / "train")


def bundled_dataset_root(name: str) -> Path:
    """Root of the bundled ``coco-mini``, ``crowdpose-mini`` or ``ochuman-mini`` dataset."""
    root = BUNDLED_ROOT / name
    if not root.is_dir():
        raise HrnextError(f"bundled dataset {name!r} is missing from {BUNDLED_ROOT}: reinstall hrnext-trt")
    return root


def recipe_path(relative: str) -> Path:
    """A training recipe by its path under ``train/`` (e.g. ``presets/coco_mini_demo.yaml``)."""
    for root in _RECIPE_ROOTS:
        if (root / relative).is_file():
            return root / relative
    raise HrnextError(f"training recipe {relative!r} is not installed (looked in {', '.join(map(str, _RECIPE_ROOTS))}): "
                      "reinstall hrnext-trt")
