"""The heatmap codec: the one owner of heatmap geometry (numpy only).

Encoding is mmpose 0.x's classic MSRA target: a Gaussian (sigma 2) centred on the joint's
nearest heatmap pixel, cut at 3 sigma, and a joint weight of 0 when it is not visible or its
Gaussian window lies wholly outside the heatmap. Decoding is the argmax with a quarter-pixel
step toward the higher neighbour. Flip test averages the heatmaps of a crop and of its mirror,
mirrored back with the flip pairs and shifted one pixel right (mmpose's ``shift_heatmap``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HEATMAP_STRIDE = 4  # the network's heatmaps are 1/4 of its input


class HeatmapCodec:
    def __init__(self, input_size: tuple[int, int] = (256, 192), sigma: float = 2.0):
        self.input_size = (int(input_size[0]), int(input_size[1]))  # (H, W)
        self.heatmap_size = (self.input_size[0] // HEATMAP_STRIDE, self.input_size[1] // HEATMAP_STRIDE)  # (h, w)
        self.sigma = float(sigma)

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets (J, h, w) float32 and weights (J,) float32 for keypoints (J, 2) in crop pixels."""
        h, w = self.heatmap_size
        stride = np.array([self.input_size[1] / w, self.input_size[0] / h])
        radius = self.sigma * 3
        # int(x + 0.5) as in mmpose: rounds to nearest and truncates toward zero below 0.
        mu = np.trunc(np.asarray(keypoints, dtype=np.float64) / stride + 0.5)
        inside = (mu[:, 0] - radius < w) & (mu[:, 1] - radius < h) & \
                 (mu[:, 0] + radius + 1 >= 0) & (mu[:, 1] + radius + 1 >= 0)
        weights = ((np.asarray(visible) > 0) & inside).astype(np.float32)
        # Separable Gaussian: exp(-(dx^2 + dy^2) / 2s^2) = gx * gy, each cut at 3 sigma.
        dx = np.arange(w)[None, :] - mu[:, :1]
        dy = np.arange(h)[None, :] - mu[:, 1:]
        gx = np.where(np.abs(dx) <= radius, np.exp(-dx ** 2 / (2 * self.sigma ** 2)), 0.0)
        gy = np.where(np.abs(dy) <= radius, np.exp(-dy ** 2 / (2 * self.sigma ** 2)), 0.0)
        heatmaps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
        heatmaps *= weights[:, None, None]
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, J, 2) in crop pixels and their scores (N, J) from heatmaps (N, J, h, w).

        A joint whose heatmap maximum is not positive gets heatmap position -1 (mmpose's
        convention), so it lands off the crop with score <= 0.
        """
        n, j, h, w = heatmaps.shape
        flat = heatmaps.reshape(n, j, h * w)
        index = flat.argmax(axis=2)
        scores = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
        x, y = (index % w).astype(np.float64), (index // w).astype(np.float64)
        valid = scores > 0
        # Quarter-pixel step toward the higher neighbour, only strictly inside the border
        # (mmpose's "1 < x < w - 1" test, kept for identical numbers).
        inner = valid & (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
        safe = np.where(inner, index, w + 1)  # any interior pixel; masked out below

        def at(offset: int) -> np.ndarray:
            return np.take_along_axis(flat, (safe + offset)[..., None], axis=2)[..., 0]

        x += np.where(inner, 0.25 * np.sign(at(1) - at(-1)), 0.0)
        y += np.where(inner, 0.25 * np.sign(at(w) - at(-w)), 0.0)
        coords = np.stack([np.where(valid, x, -1.0), np.where(valid, y, -1.0)], axis=-1)
        coords *= np.array([self.input_size[1] / w, self.input_size[0] / h])
        return coords, scores.astype(np.float32)


def flip_back(heatmaps: np.ndarray, flip_index: Sequence[int], shift: bool = True) -> np.ndarray:
    """Heatmaps (N, J, h, w) of mirrored crops, turned into heatmaps of the original crops.

    Mirrors horizontally, swaps left/right joints (``flip_index[j]`` is the joint ``j`` becomes
    in a mirror) and, with ``shift``, moves everything one pixel right to undo the half-pixel
    misalignment that mirroring a stride-4 heatmap introduces (mmpose ``shift_heatmap``).
    """
    flipped = heatmaps[:, list(flip_index), :, ::-1]
    if shift:
        out = np.empty_like(flipped)
        out[..., 1:] = flipped[..., :-1]
        out[..., 0] = flipped[..., 0]
        return out
    return np.ascontiguousarray(flipped)
