"""What every converter shares: image sizes, the dataset root, the COCO category, atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta
from hrnext_trt.reports import check_writable, write_atomic


def find_root(src: Path, relative: str, what: str) -> Path:
    """The nearest folder at or above ``src`` under which ``relative`` exists (the dataset root)."""
    start = src if src.is_dir() else src.parent
    for folder in (start, *start.parents[:4]):
        if (folder / relative).is_file():
            return folder
    raise HrnextError(f"cannot find {relative} at or above {start}: pass --image-root, the folder {what}")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header (Pillow reads no pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise HrnextError(f"image not found: {path} (check --image-root)") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise HrnextError(f"unreadable image {path}: {exc}") from None


def category(meta: KeypointMeta) -> dict:
    """COCO's person category with the dataset's joint names and its 1-based skeleton."""
    return {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(meta.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in meta.skeleton]}


def keypoint_box(keypoints: list[float]) -> list[float]:
    """The tight x, y, w, h box of the labelled joints of a flat [x, y, v] * J list ([0, 0, 0, 0] if none)."""
    xs = [keypoints[i] for i in range(0, len(keypoints), 3) if keypoints[i + 2] > 0]
    ys = [keypoints[i + 1] for i in range(0, len(keypoints), 3) if keypoints[i + 2] > 0]
    if not xs:
        return [0.0, 0.0, 0.0, 0.0]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def check_out_path(out: Path, src: Path, *inputs: Path | None) -> None:
    """Refuse an ``out`` that cannot be written, is one of the files read (it would be replaced by the
    conversion) or sits in a source folder (whose every .json file the next conversion reads as one
    more video)."""
    check_writable(out, "--out", folder=False, example="keypoints.json")  # before the conversion's work
    target = Path(out).resolve()
    for source in (src, *inputs):
        if source is not None and Path(source).is_file() and Path(source).resolve() == target:
            raise HrnextError(f"--out {out} is the source file {source}: the conversion would replace it; write the "
                              "COCO file elsewhere, e.g. into the dataset's annotations/ folder")
    if Path(src).is_dir() and Path(src).resolve() in target.parents:
        raise HrnextError(f"--out {out} is inside the source folder {src}, whose every .json file is read as an "
                          "annotation file: the next conversion would read it too; write it beside the folder")


def write_coco_file(data: dict, out: str | Path) -> Path:
    """Write ``data`` as JSON to ``out``: an existing file is replaced whole or not at all."""
    return write_atomic(out, json.dumps(data).encode("utf-8"))
