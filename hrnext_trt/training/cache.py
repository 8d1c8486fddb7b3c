"""Decoded training images kept in memory (``data.cache_images``), for small training sets.

JPEG decoding is most of a training sample's cost (about two thirds of a 128x96 crop, more at
256x192); a small set such as coco-mini (80 images) decoded once saves it on every epoch.
Only the decoding moves: each sample is still cropped, augmented and encoded by
``TopDownDataset`` with the same random draws, so a run with the cache equals a run without it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hrnext_trt.data.datasets import PoseDataset
from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError

CACHE_LIMIT_BYTES = 4 << 30  # decoded BGR pixels a cache may hold


class ImageCache:
    """``read_image`` over the images of ``dataset``'s instances, each decoded once at construction.

    An unreadable image stays unreadable: reading it raises the same ``HrnextError`` line as
    ``read_image`` would (``TopDownDataset(skip_unreadable=True)`` then skips it as usual).
    """

    def __init__(self, dataset: PoseDataset, limit_bytes: int = CACHE_LIMIT_BYTES, threads: int | None = None):
        paths = list(dict.fromkeys(inst.image_path for inst in dataset.instances))
        sizes = {info.path: info.width * info.height * 3 for info in dataset.images.values()}
        need = sum(sizes.get(p, 0) for p in paths)
        if need > limit_bytes:
            raise HrnextError(f"data.cache_images would keep {need / 2 ** 20:.0f} MiB of decoded {dataset.name} "
                              f"{dataset.split} images in memory (limit {limit_bytes / 2 ** 20:.0f} MiB): set "
                              "data.cache_images false for a set this large")
        # OpenCV decodes without the GIL: threads use every core.
        with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
            self._entries = dict(zip(map(str, paths), pool.map(_decode, paths)))

    def __call__(self, path: str | Path) -> np.ndarray:
        entry = self._entries.get(str(path))
        if entry is None:
            return read_image(path)  # not one of the dataset's images: read it as usual
        if isinstance(entry, HrnextError):
            raise HrnextError(str(entry))
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values() if isinstance(e, np.ndarray))


def _decode(path: Path) -> np.ndarray | HrnextError:
    try:
        image = read_image(path)
    except HrnextError as exc:
        return exc
    image.flags.writeable = False  # shared by every epoch: no sample may draw on it
    return image
