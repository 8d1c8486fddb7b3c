"""Reading images and JSON files with one clear error line when they are missing or broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnext_trt.errors import HrnextError


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as BGR uint8 (H, W, 3); HrnextError if it is missing or unreadable."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise HrnextError(f"image not found: {path} (check the dataset root and split)") from None
    except OSError as exc:
        raise HrnextError(f"cannot read image {path}: {exc.strerror or exc}") from None
    # imdecode (not imread) so a corrupt file is told apart from a missing one.
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as exc:  # OpenCV asserts rather than fails on some files
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise HrnextError(f"image {path} is larger than OpenCV decodes (2^30 pixels; the environment variable "
                              "OPENCV_IO_MAX_IMAGE_PIXELS raises the limit): downscale it") from None
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise HrnextError(f"unreadable image {path} (OpenCV: {reason}): replace or remove it") from None
    if image is None:
        raise HrnextError(f"unreadable image {path}: the file is empty, corrupt or not an image; replace or remove it")
    return image


def read_json(path: str | Path, what: str) -> Any:
    """Parsed JSON of ``path``; ``what`` names the file's role in the error line."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise HrnextError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise HrnextError(f"{what} {path} is a directory, expected a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HrnextError(f"malformed JSON in {what} {path}: {exc}") from None
