"""Keypoint smoothing over a video's frames: a One-Euro filter per track and joint (Casiez, Roussel
and Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: a still joint is smoothed hard (most of its
heatmap jitter, a pixel or more per frame, goes), a moving one lightly (little lag). Time is in
seconds (frame index / frame rate), so one setting suits every frame rate; the speed that raises
the cutoff is measured in person heights per second (the box's height), so it suits near and far
people alike. Scores are not filtered. A track's first frame is passed through; a track not seen
for ``forget_s`` starts afresh.
"""

from __future__ import annotations

import math

import numpy as np

# Chosen on two measurements (README, "Measured here"): a joint with 2 px of noise on a 200 px person
# at 30 frames/s (tests/test_predict_smoothing.py): still, its frame-to-frame jitter falls to 18 %;
# swinging 50 px at 0.5 Hz, it lags at most 5.2 px without noise (after its first second) and, with
# the noise, stays within 10 % of the raw joints' error (mean per-axis 1.74 px against 1.68 px). A
# weak real network on a pan with known truth (scripts/smoothing_study.py): jitter 33.4 -> 14.4 px,
# error 47.3 -> 44.9 px. A higher BETA lags less and smooths big jumps less; a lower one the reverse.
MIN_CUTOFF_HZ = 1.0  # still joints: frequencies above ~1 Hz are jitter
BETA = 5.0  # cutoff rise (Hz) per person height per second of speed
DERIVATIVE_CUTOFF_HZ = 1.0


def _alpha(dt: float, cutoff) -> np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64) * dt))


class OneEuroSmoother:
    def __init__(self, min_cutoff: float = MIN_CUTOFF_HZ, beta: float = BETA,
                 d_cutoff: float = DERIVATIVE_CUTOFF_HZ, forget_s: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff, self.forget_s = min_cutoff, beta, d_cutoff, forget_s
        self._tracks: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # id -> (x, dx/dt, time)

    def rescale(self, sx: float, sy: float) -> None:
        """Every track's state in the pixels of a frame of another size (the same scene scaled)."""
        scale = np.array([sx, sy])
        self._tracks = {k: (x * scale, dx * scale, t) for k, (x, dx, t) in self._tracks.items()}

    def __call__(self, track_ids: np.ndarray, keypoints: np.ndarray, boxes_xyxy: np.ndarray,
                 time_s: float) -> np.ndarray:
        """Smoothed copy of ``keypoints`` (N, J, 3) of the people ``track_ids`` (N,) at ``time_s``;
        ``boxes_xyxy`` (N, 4) give each person's height."""
        out = np.array(keypoints, dtype=np.float32, copy=True)
        for i, track in enumerate(np.asarray(track_ids).tolist()):
            x = out[i, :, :2].astype(np.float64)
            state = self._tracks.get(track)
            if state is None or not 0 < time_s - state[2] <= self.forget_s:
                self._tracks[track] = (x, np.zeros_like(x), time_s)
                continue
            x_prev, dx_prev, t_prev = state
            dt = time_s - t_prev
            height = max(float(boxes_xyxy[i][3] - boxes_xyxy[i][1]), 1.0)
            a_d = _alpha(dt, self.d_cutoff)
            dx = a_d * ((x - x_prev) / dt) + (1 - a_d) * dx_prev
            cutoff = self.min_cutoff + self.beta * np.linalg.norm(dx, axis=1, keepdims=True) / height
            a = _alpha(dt, cutoff)
            x_hat = a * x + (1 - a) * x_prev
            self._tracks[track] = (x_hat, dx, time_s)
            out[i, :, :2] = x_hat
        self._tracks = {k: v for k, v in self._tracks.items() if time_s - v[2] <= self.forget_s}
        return out
