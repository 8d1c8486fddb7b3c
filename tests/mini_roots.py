"""mpii-mini and posetrack18-mini in the toolkit's dataset layouts: converted annotations in a
temporary root, the shared images linked in (the shared folder stays read-only)."""

from __future__ import annotations

from pathlib import Path

from hrnext_trt.converters import convert_mpii, convert_posetrack, write_coco_file


def mpii_root(data_dir: Path, base: Path) -> Path:
    """``base/mpii`` with ``annotations/mpii_val.json`` (from HRNet's valid.json + gt_valid.mat) and ``images``."""
    root = base / "mpii"
    if not (root / "annotations" / "mpii_val.json").is_file():
        write_coco_file(convert_mpii(data_dir / "mpii-mini" / "annot" / "valid.json"),
                        root / "annotations" / "mpii_val.json")
        (root / "images").symlink_to(data_dir / "mpii-mini" / "images")
    return root


def posetrack_root(data_dir: Path, base: Path) -> Path:
    """``base/posetrack18`` with ``annotations/posetrack18_val.json``, ``images`` and ``dets``."""
    root = base / "posetrack18"
    if not (root / "annotations" / "posetrack18_val.json").is_file():
        src = data_dir / "posetrack18-mini"
        write_coco_file(convert_posetrack(src / "annotations" / "val"), root / "annotations" / "posetrack18_val.json")
        (root / "images").symlink_to(src / "images")
        (root / "dets").symlink_to(src / "dets")
    return root
