"""OKS-based non-maximum suppression of the poses found in one image (mmpose 0.x ``oks_nms``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Pairwise object keypoint similarity (N, N) of poses (N, J, 2+) with box areas (N,).

    Each pair is normalised by the mean of its two areas, as mmpose's ``oks_iou`` does.
    """
    xy = np.asarray(keypoints, dtype=np.float64)[..., :2]
    sq_dist = ((xy[:, None] - xy[None, :]) ** 2).sum(-1)  # (N, N, J)
    mean_area = (areas[:, None] + areas[None, :]) / 2 + np.spacing(1)
    return _similarity(sq_dist, mean_area, sigmas)


def oks_pairs(a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Object keypoint similarity (N,) of each pose of ``a`` (N, J, 2+) with the same person's pose
    in ``b``, areas (N,) as ``oks_matrix`` takes them (its value for a pair of equal areas)."""
    sq_dist = ((np.asarray(a, dtype=np.float64)[..., :2] - np.asarray(b, dtype=np.float64)[..., :2]) ** 2).sum(-1)
    return _similarity(sq_dist, np.asarray(areas, dtype=np.float64) + np.spacing(1), sigmas)


def _similarity(sq_dist: np.ndarray, area: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    return np.exp(-sq_dist / variances / area[..., None] / 2).mean(-1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: Sequence[float],
            threshold: float = 0.9) -> np.ndarray:
    """Indices of the poses kept, best score first: a pose is dropped when its OKS with a
    better-scored kept pose exceeds ``threshold``."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    oks = oks_matrix(keypoints, np.asarray(areas, dtype=np.float64), sigmas)
    # mmpose's argsort()[::-1], stable: on equal scores the later pose first, as NumPy's default sort
    # gives it on small arrays (an insertion sort); on larger ones that order depends on the CPU.
    order = np.argsort(np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf), kind="stable")[::-1]
    keep = []
    suppressed = np.zeros(len(order), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= oks[i] > threshold
    return np.array(keep, dtype=np.int64)
