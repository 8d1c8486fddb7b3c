"""Heatmap codec: encoding against mmpose's windowed definition, decoding, round trip, flip-back."""

import numpy as np
import pytest

from hrnext_trt.data.codec import HeatmapCodec, flip_back
from hrnext_trt.keypoints import COCO, CROWDPOSE


def _reference_target(x, y, w, h, stride=4, sigma=2):
    """mmpose 0.x MSRA target of one joint, written pixel by pixel from its definition."""
    mu_x, mu_y = int(x / stride + 0.5), int(y / stride + 0.5)
    radius = 3 * sigma
    target = np.zeros((h, w))
    if mu_x - radius >= w or mu_y - radius >= h or mu_x + radius + 1 < 0 or mu_y + radius + 1 < 0:
        return target, 0.0
    for yy in range(max(0, mu_y - radius), min(h, mu_y + radius + 1)):
        for xx in range(max(0, mu_x - radius), min(w, mu_x + radius + 1)):
            target[yy, xx] = np.exp(-((xx - mu_x) ** 2 + (yy - mu_y) ** 2) / (2 * sigma ** 2))
    return target, 1.0


def _reference_decode(heatmap):
    """argmax + quarter-pixel step, one heatmap at a time (mmpose 0.x 'default' post-process)."""
    h, w = heatmap.shape
    idx = int(np.argmax(heatmap))
    score = heatmap.flat[idx]
    if score <= 0:
        return -1.0, -1.0, score
    px, py = idx % w, idx // w
    x, y = float(px), float(py)
    if 1 < px < w - 1 and 1 < py < h - 1:
        x += 0.25 * np.sign(heatmap[py, px + 1] - heatmap[py, px - 1])
        y += 0.25 * np.sign(heatmap[py + 1, px] - heatmap[py - 1, px])
    return x, y, score


def test_encode_matches_windowed_definition():
    codec = HeatmapCodec((256, 192))
    rng = np.random.default_rng(0)
    # Inside, near the borders, partly outside (window still touching) and far outside.
    points = np.concatenate([rng.uniform(0, [192, 256], (10, 2)),
                             [[-10.0, 100.0], [-40.0, 5.0], [200.0, 262.0], [215.0, 10.0], [-2.5, -1.0]]])
    visible = np.ones(len(points))
    visible[3] = 0
    heatmaps, weights = codec.encode(points, visible)
    assert heatmaps.shape == (len(points), 64, 48) and heatmaps.dtype == np.float32
    for j, (x, y) in enumerate(points):
        ref, ref_w = _reference_target(x, y, 48, 64)
        if not visible[j]:
            ref, ref_w = ref * 0, 0.0
        np.testing.assert_allclose(heatmaps[j], ref, atol=1e-6)
        assert weights[j] == ref_w
    assert weights[-2] == 0 and weights[-4] == 0  # windows wholly outside the heatmap


def test_decode_matches_per_joint_reference():
    codec = HeatmapCodec((256, 192))
    rng = np.random.default_rng(1)
    heatmaps = rng.normal(size=(3, 5, 64, 48)).astype(np.float32)
    heatmaps[0, 0] = -1.0  # no positive maximum
    heatmaps[1, 1] = 0.0
    heatmaps[1, 1, 0, 20] = 1.0  # maximum on the border: no quarter step
    heatmaps[1, 2] = 0.0
    heatmaps[1, 2, 30, 1] = 1.0  # x == 1: mmpose's strict test skips the step too
    heatmaps[1, 2, 30, 2] = 0.5
    coords, scores = codec.decode(heatmaps)
    for n in range(3):
        for j in range(5):
            x, y, s = _reference_decode(heatmaps[n, j])
            np.testing.assert_allclose(coords[n, j], [x * 4, y * 4])
            assert scores[n, j] == pytest.approx(s)


def test_encode_decode_round_trip():
    codec = HeatmapCodec((256, 192))
    rng = np.random.default_rng(2)
    points = rng.uniform([12, 12], [180, 244], (CROWDPOSE.num_joints, 2))
    heatmaps, weights = codec.encode(points, np.ones(len(points)))
    coords, scores = codec.decode(heatmaps[None])
    assert np.all(weights == 1)
    # The target is centred on the nearest heatmap pixel: decoding returns exactly it, within
    # half a heatmap pixel (2 input pixels) of the joint.
    np.testing.assert_allclose(coords[0], np.floor(points / 4 + 0.5) * 4)
    assert np.abs(coords[0] - points).max() <= 2.0
    np.testing.assert_allclose(scores[0], 1.0)


def test_flip_back_swaps_pairs_mirrors_and_shifts():
    codec = HeatmapCodec((256, 192))
    meta = COCO
    left, right = meta.flip_pairs[0]
    points = np.full((meta.num_joints, 2), 96.0)
    points[left] = (40.0, 100.0)
    # What the network sees in the mirrored crop: the left joint at the mirrored x, in the
    # right joint's channel.
    mirrored_points = points.copy()
    mirrored_points[:, 0] = 192 - 1 - mirrored_points[:, 0]
    mirrored_points = mirrored_points[list(meta.flip_index)]
    mirrored, _ = codec.encode(mirrored_points, np.ones(meta.num_joints))
    back = flip_back(mirrored[None], meta.flip_index)
    unshifted = flip_back(mirrored[None], meta.flip_index, shift=False)
    coords, _ = codec.decode(back)
    coords_unshifted, _ = codec.decode(unshifted)
    # The mirrored target sits at heatmap column m; mirrored back it is column w - 1 - m (about
    # 0.75 heatmap pixel left of the joint) and the one-pixel shift moves it to w - m.
    m = np.floor((192 - 1 - 40) / 4 + 0.5)
    assert coords_unshifted[0, left, 0] == pytest.approx((48 - 1 - m) * 4)
    assert coords[0, left, 0] == pytest.approx((48 - m) * 4)
    assert coords[0, left, 0] == pytest.approx(40)
    assert coords[0, left, 1] == pytest.approx(100)
    np.testing.assert_array_equal(back[0, :, :, 1:], unshifted[0, :, :, :-1])
    np.testing.assert_array_equal(back[0, :, :, 0], unshifted[0, :, :, 0])
