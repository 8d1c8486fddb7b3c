"""``predict --smooth``: the One-Euro filter per track (still joints stop jittering, moving ones lag
little, the same at any frame rate and person size, a new or returning track passes through) and
the video end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict import PredictConfig, run_predict
from hrnext_trt.predict.boxes import xywh_to_xyxy
from hrnext_trt.predict.smoothing import OneEuroSmoother
from tests.predict_graphs import end_to_end_detector, pose_network
from tests.test_predict_run import DETS, make_video

BOX = np.array([[100.0, 50.0, 180.0, 250.0]])  # a person 200 px tall
ID = np.array([7])


def run(smoother, positions, fps=30.0, box=BOX, start=0):
    """Feed one joint's positions (T, 2), one per frame; the smoothed positions (T, 2)."""
    out = []
    for k, xy in enumerate(positions):
        keypoints = np.zeros((1, 3, 3), np.float32)
        keypoints[0, :, :2] = xy
        keypoints[0, :, 2] = 0.9
        smoothed = smoother(ID, keypoints, box, (start + k) / fps)
        assert (smoothed[0, :, 2] == 0.9).all()  # scores are not filtered
        out.append(smoothed[0, 0, :2])
    return np.array(out)


def test_still_joints_stop_jittering():
    rng = np.random.default_rng(0)
    true = np.array([140.0, 90.0])
    raw = true + rng.normal(0, 2.0, (150, 2))  # 2 px of heatmap jitter, 5 s at 30 fps
    smoothed = run(OneEuroSmoother(), raw)
    np.testing.assert_array_equal(smoothed[0], raw[0].astype(np.float32))  # a track's first frame passes through
    step = lambda xy: np.linalg.norm(np.diff(xy[30:], axis=0), axis=1).mean()  # noqa: E731
    assert step(smoothed) < 0.3 * step(raw)
    assert np.abs(smoothed[30:] - true).mean() < 0.6 * np.abs(raw[30:] - true).mean()
    # Swinging 50 px at 0.5 Hz under the same noise: as near the true path as the raw joints.
    x = 140 + 50 * np.sin(np.pi * np.arange(90) / 30)
    path = np.stack([x, np.full_like(x, 90.0)], axis=1)
    noisy = path + rng.normal(0, 2.0, path.shape)
    assert np.abs(run(OneEuroSmoother(), noisy) - path)[30:].mean() < 1.1 * np.abs(noisy - path)[30:].mean()
    still = run(OneEuroSmoother(), np.tile(true, (40, 1)))
    np.testing.assert_allclose(still, np.tile(true, (40, 1)), atol=1e-4)


def test_moving_joints_lag_little():
    t = np.arange(90) / 30.0
    moving = np.stack([100 + 200 * t, np.full_like(t, 90.0)], axis=1)  # one person height per second
    lag = np.abs(run(OneEuroSmoother(), moving) - moving)[45:, 0].max()
    lag_without_speed = np.abs(run(OneEuroSmoother(beta=0.0), moving) - moving)[45:, 0].max()
    assert lag < 0.5 * lag_without_speed and lag < 0.1 * 200


def test_the_same_at_any_size_and_frame_rate():
    rng = np.random.default_rng(1)
    raw = np.array([140.0, 90.0]) + np.cumsum(rng.normal(0, 3.0, (60, 2)), axis=0)
    base = run(OneEuroSmoother(), raw)
    twice = run(OneEuroSmoother(), 2 * raw, box=2 * BOX)
    np.testing.assert_allclose(twice, 2 * base, rtol=1e-5)
    # A joint swinging 50 px at 0.5 Hz, filmed at 30 and at 60 frames/s: the same path at the shared instants.
    def swing(fps):
        x = 140 + 50 * np.sin(np.pi * np.arange(int(3 * fps)) / fps)
        return np.stack([x, np.full_like(x, 90.0)], axis=1)
    at_30, at_60 = run(OneEuroSmoother(), swing(30), fps=30), run(OneEuroSmoother(), swing(60), fps=60)[::2]
    lag = np.abs(at_30 - swing(30))[30:, 0].max()
    assert 0 < lag < 6 and np.abs(at_30 - at_60)[30:, 0].max() < 0.3 * lag


def test_new_and_returning_tracks_start_afresh():
    smoother = OneEuroSmoother(forget_s=1.0)
    run(smoother, np.tile([140.0, 90.0], (30, 1)))
    back = run(smoother, [[300.0, 200.0]], start=30 + 45)  # 1.5 s later: a stale state is not blended in
    np.testing.assert_allclose(back[0], [300, 200])
    other = smoother(np.array([8]), np.full((1, 3, 3), 5.0, np.float32), BOX, 76 / 30)
    np.testing.assert_allclose(other, 5.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("models")
    return {"pose": pose_network(folder / "model.onnx"),
            "detector": end_to_end_detector(folder / "yolox.onnx", DETS, [0, 0])}


def test_a_video_is_smoothed_end_to_end(tmp_path, models):
    """predict --smooth writes the raw run's joints through the filter: per track, in frame order, at
    the video's frame times."""
    video = make_video(tmp_path / "clip.mp4", frames=24)  # 10 frames/s

    def lines(out, **extra):
        run_predict(PredictConfig(str(video), models["pose"], detector=models["detector"], out=tmp_path / out,
                                  device="cpu", batch=5, progress=False, **extra))
        return [json.loads(line) for line in (tmp_path / out / "clip.jsonl").read_text().splitlines()]

    raw, smoothed = lines("raw"), lines("smooth", smooth=True)
    assert len(raw) == len(smoothed) == 24
    smoother, moved = OneEuroSmoother(), 0.0
    for before, after in zip(raw, smoothed):
        people = before["people"]
        assert [p["track_id"] for p in after["people"]] == [p["track_id"] for p in people] and len(people) == 2
        keypoints = np.array([np.reshape(p["keypoints"], (-1, 3)) for p in people], np.float32)
        boxes = xywh_to_xyxy([p["bbox"] for p in people])
        expected = smoother(np.array([p["track_id"] for p in people]), keypoints, boxes, before["time_s"])
        got = np.array([np.reshape(p["keypoints"], (-1, 3)) for p in after["people"]])
        np.testing.assert_allclose(got, expected, atol=0.02)  # the JSON's 2-decimal rounding, carried
        moved = max(moved, np.abs(got - keypoints).max())
    assert moved > 1  # the filter did move joints
    assert json.loads((tmp_path / "smooth" / "summary.json").read_text())["config"]["smooth"] is True


def test_smoothing_images_is_refused(tmp_path, models):
    images = bundled_dataset_root("crowdpose-mini") / "images"
    with pytest.raises(HrnextError, match=r"--smooth filters each person's keypoints over a video's frames, and .* "
                                          r"is no video: leave it out, or pass --sequence"):
        run_predict(PredictConfig(str(images), models["pose"], out=tmp_path / "o", smooth=True, progress=False))
    assert not (tmp_path / "o").exists()


def test_the_smoothing_study_prints_its_table(tmp_path):
    """scripts/smoothing_study.py end to end on a small untrained COCO model: every row measured."""
    import os
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    from hrnext_trt.models import build_pose_model, make_checkpoint
    from tests.conftest import REPO

    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pth"
    torch.save(make_checkpoint(build_pose_model("hrnext_tiny", 17), (64, 48), "coco"), checkpoint)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "smoothing_study.py"), "--model", str(checkpoint),
                           "--frames", "8", "--side", "160", "--threads", "1"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "error vs truth" not in line]
    assert len(rows) == 7 and rows[0].startswith("| raw joints") and "--smooth (One-Euro 1 Hz, beta 5)" in rows[1]
    for row in rows:
        error, jitter = (float(cell) for cell in row.strip("| ").split("|")[1:])
        assert error > 0 and jitter >= 0
