"""``hrnext-trt predict`` end to end on bundled images and a short video made from them: results
schema, boxes and keypoints inside the frame, one result per person, stable track ids, the
video's frames and size, per-stage timings that add up to the wall clock, clean Ctrl-C, and one
line for each kind of bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import CROWDPOSE
from hrnext_trt.predict import PredictConfig, run_predict
from tests.predict_graphs import end_to_end_detector, pose_network

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
CROWD_IMAGES = bundled_dataset_root("crowdpose-mini") / "images"
J = CROWDPOSE.num_joints
# Two people side by side in the detector's 640x640 input; boxes do not overlap.
DETS = [[40, 60, 200, 400, 0.9], [300, 60, 460, 400, 0.8]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"pose": pose_network(folder / "model.onnx"),
            "detector": end_to_end_detector(folder / "yolox.onnx", DETS, [0, 0]),
            # Boxes that move with the frame's mean brightness: a few pixels of jitter per frame.
            "jitter": end_to_end_detector(folder / "yolox_jitter.onnx", DETS, [0, 0], gain=0.3)}


def make_video(path: Path, frames: int = 12, size=(320, 240), seed: int = 0) -> Path:
    """A static scene (a bundled photo) with fresh noise and a slowly rising brightness, written by OpenCV."""
    image = cv2.resize(cv2.imread(str(bundled_dataset_root("coco-mini") / "val2017" / "000000040083.jpg")), size)
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        noise = rng.integers(-20, 21, image.shape) + 3 * (i % 12)
        writer.write(np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8))
    writer.release()
    return path


def check_person(person: dict, width: int, height: int) -> None:
    x, y, w, h = person["bbox"]
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width + 0.01 and y + h <= height + 0.01
    kpts = np.array(person["keypoints"]).reshape(J, 3)
    assert (kpts[:, 0] >= 0).all() and (kpts[:, 0] <= width - 1).all()
    assert (kpts[:, 1] >= 0).all() and (kpts[:, 1] <= height - 1).all()
    assert 0 <= person["box_score"] <= 1 and np.isfinite(person["score"])


def test_images_folder_gives_annotated_images_and_coco_results(tmp_path, models):
    result = run_predict(PredictConfig(str(CROWD_IMAGES), models["pose"], detector=models["detector"],
                                       out=tmp_path / "out", batch=3, progress=False))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result.frames == 2 and result.people == 4 == len(results)
    for name, image_id in (("103319.jpg", 103319), ("106848.jpg", 106848)):
        source = cv2.imread(str(CROWD_IMAGES / name))
        drawn = cv2.imread(str(tmp_path / "out" / name))
        assert drawn.shape == source.shape and not np.array_equal(drawn, source)
        mine = [r for r in results if r["image_id"] == image_id]
        assert len(mine) == 2  # one result per person
        for r in mine:
            assert set(r) == {"image_id", "category_id", "file_name", "bbox", "box_score", "keypoints", "score"}
            assert r["category_id"] == 1 and r["file_name"] == name and len(r["keypoints"]) == 3 * J
            check_person(r, source.shape[1], source.shape[0])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["people"] == 4 and not summary["interrupted"]
    assert set(summary["files"]) == {"results.json", "103319.jpg", "106848.jpg"}


def test_video_tracks_are_stable_and_the_outputs_match_the_input(tmp_path, models):
    video = make_video(tmp_path / "clip.mp4", frames=12)
    out = tmp_path / "out"
    started = time.perf_counter()
    result = run_predict(PredictConfig(str(video), models["pose"], detector=models["jitter"], out=out, batch=5,
                                       detect_every=2, show_fps=True, progress=False))
    wall = time.perf_counter() - started

    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(12))
    for record in lines:
        assert set(record) == {"frame", "time_s", "people"}
        assert sorted(p["track_id"] for p in record["people"]) == [1, 2]  # same two ids in every frame
        for person in record["people"]:
            assert set(person) == {"track_id", "bbox", "box_score", "keypoints", "score"}
            check_person(person, 320, 240)
    boxes = np.array([[p["bbox"] for p in sorted(r["people"], key=lambda p: p["track_id"])] for r in lines])
    assert np.ptp(boxes[::2], axis=0).max() > 0  # the detector's boxes really moved between rounds...
    np.testing.assert_array_equal(boxes[1::2], boxes[::2])  # ...and were carried between them

    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    read = 0
    while capture.read()[0]:
        read += 1
    assert read == 12

    # The stages cover the loop: with set-up and closing they add up to a clock outside within 10 %
    # (plus 50 ms: this run lasts about 0.1 s, and a busy machine's scheduler moves tens of ms).
    meta = result.timing.meta
    stages = sum(row["total_s"] for row in result.timing.rows[:-1])
    assert abs(stages + meta["setup_s"] + meta["teardown_s"] - wall) <= 0.1 * wall + 0.05
    assert meta["teardown_s"] < 0.2 * wall + 0.05 and stages == pytest.approx(meta["wall_s"], rel=0.02)
    assert meta["frames"] == 12 and meta["people"] == 24
    assert meta["frames_per_s"] == pytest.approx(12 / meta["wall_s"])


def test_detections_file_and_checkpoint_model(tmp_path, fixtures_dir):
    torch = pytest.importorskip("torch")
    from hrnext_trt.models import build_pose_model, make_checkpoint

    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pth"
    torch.save(make_checkpoint(build_pose_model("hrnext_tiny", J), (64, 48), "crowdpose"), checkpoint)
    dets = bundled_dataset_root("crowdpose-mini") / "annotations" / "det_for_crowd_test_0.1_0.5.json"
    entries = [d for d in json.loads(dets.read_text()) if d["image_id"] == 106848 and d["score"] >= 0.5]
    result = run_predict(PredictConfig(str(CROWD_IMAGES / "106848.jpg"), checkpoint, boxes=dets, out=tmp_path / "o",
                                       det_score_thr=0.5, threads=1, progress=False))
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "PyTorch" in result.summary["model"]
    assert 1 <= len(results) <= len(entries)  # OKS-NMS may merge two boxes of one person, never add one
    for r in results:
        assert any(np.allclose(r["bbox"], e["bbox"], atol=0.01) for e in entries)
        check_person(r, 640, 425)


def test_the_papers_checkpoint_predicts_as_its_export(tmp_path, fixtures_dir, fixture_export):
    """The paper's .pth (mmpose layout, no model record) runs in predict with --arch, --joints and
    --input-size, and gives the poses its exported ONNX gives for the same boxes."""
    from click.testing import CliRunner

    from hrnext_trt.cli import main

    ckpt = fixtures_dir / "hrnext_tiny_crowdpose.pth"
    dets = bundled_dataset_root("crowdpose-mini") / "annotations" / "det_for_crowd_test_0.1_0.5.json"
    common = [str(CROWD_IMAGES / "106848.jpg"), "--boxes", str(dets), "--det-score-thr", "0.5", "--threads", "1",
              "--device", "cpu"]

    def predict(model, out, *extra):
        result = CliRunner().invoke(main, ["predict", *common, "--model", str(model), "--out", str(out), *extra])
        return result.exit_code, result.output

    code, printed = predict(ckpt, tmp_path / "refused", "--arch", "hrnext_tiny")
    assert code == 2 and (f"error: checkpoint {ckpt} is an mmpose file, which does not record its model: pass "
                          "--joints, --input-size (e.g.") in printed
    assert not (tmp_path / "refused").exists()
    code, printed = predict(ckpt, tmp_path / "pth", "--arch", "hrnext_tiny", "--joints", "14", "--input-size",
                            "256x192")
    assert code == 0, printed
    export, _ = fixture_export
    code, printed = predict(export / "model.onnx", tmp_path / "onnx")
    assert code == 0, printed
    from_pth, from_onnx = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("pth", "onnx"))
    assert len(from_pth) == len(from_onnx) >= 1
    close = []
    for a, b in zip(from_pth, from_onnx):
        assert a["bbox"] == b["bbox"]
        diff = np.abs(np.reshape(a["keypoints"], (-1, 3))[:, :2] - np.reshape(b["keypoints"], (-1, 3))[:, :2])
        # FP32 PyTorch vs ONNX Runtime agree to ~1e-5 in the heatmaps, but the decoder's quarter-pixel step
        # follows the sign of two neighbours' difference, which another CPU's rounding may flip where the
        # two are nearly equal: at most one heatmap cell (the crop, 1.25 x the box, over 64 x 48 cells).
        cell = 1.25 * max(a["bbox"][3] / 64, a["bbox"][2] / 48)
        assert diff.max() <= cell
        close += list((diff <= 0.05).all(axis=1))
    assert np.mean(close) >= 0.9  # the same model at the same input size, not merely a similar one
    code, printed = predict(export / "model.onnx", tmp_path / "o2", "--input-size", "256x192")
    assert code == 2 and "--input-size: model.onnx describes its own model" in printed


def test_an_engine_where_tensorrt_cannot_run_names_the_onnx_to_use(tmp_path, fixture_export):
    from hrnext_trt.contract import unavailable_reason

    export, _ = fixture_export
    engine = export / "model_fp16.engine"
    if not engine.is_file():
        pytest.skip("no engine builder installed: the export holds no engine")
    if unavailable_reason("tensorrt", "cuda") is None:
        pytest.skip("TensorRT runs engines on this machine")
    with pytest.raises(HrnextError, match=r"cannot run the TensorRT engine model_fp16\.engine here: .+: predict with "
                                          r".*model_fp16\.onnx, the ONNX it was built from, in ONNX Runtime"):
        run_predict(PredictConfig(str(CROWD_IMAGES / "103319.jpg"), engine, out=tmp_path / "o", progress=False))
    assert not (tmp_path / "o").exists()


def test_default_detector_runs_without_options(tmp_path, models):
    image = bundled_dataset_root("ochuman-mini") / "images" / "003799.jpg"
    result = run_predict(PredictConfig(str(image), models["pose"], out=tmp_path / "o", progress=False))
    assert "HOG" in result.summary["detector"] and result.people >= 1


def test_progress_in_a_log_is_lines_not_a_bar(tmp_path, models, capsys):
    """Output that is not a terminal (pytest captures stderr) gets no tqdm redraws, only sparse log lines."""
    image = bundled_dataset_root("ochuman-mini") / "images" / "003799.jpg"
    result = run_predict(PredictConfig(str(image), models["pose"], out=tmp_path / "o", progress=True))
    err = capsys.readouterr().err
    assert result.frames == 1 and "\r" not in err and "frame/s]" not in err and "|" not in err


def test_output_folder_is_never_mixed(tmp_path, models):
    config = PredictConfig(str(CROWD_IMAGES / "103319.jpg"), models["pose"], detector=models["detector"],
                           out=tmp_path / "o", progress=False)
    run_predict(config)
    with pytest.raises(HrnextError, match="is not empty"):
        run_predict(config)
    from dataclasses import replace

    run_predict(replace(config, overwrite=True))  # the previous run's files, replaced
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["103319.jpg", "results.json", "summary.json"]
    # Anybody else's file there: refused by name, and nothing removed (was: mixed with, or replaced
    # where a name collided, a user's 103319.jpg drawn over).
    (tmp_path / "o" / "mine.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    with pytest.raises(HrnextError, match=r"holds 1 file no previous predict run listed in its summary\.json "
                                          r"\(mine\.txt\): --overwrite replaces only a previous run's files"):
        run_predict(replace(config, overwrite=True))
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    with pytest.raises(HrnextError, match="is the source folder"):
        run_predict(replace(config, source=str(CROWD_IMAGES), out=CROWD_IMAGES))
    # One picture with --out its own folder: --overwrite would have replaced the photo by its drawing.
    photo = tmp_path / "album" / "103319.jpg"
    photo.parent.mkdir()
    photo.write_bytes((CROWD_IMAGES / "103319.jpg").read_bytes())
    with pytest.raises(HrnextError, match="is the folder of the source 103319.jpg: the annotated output would replace"):
        run_predict(replace(config, source=str(photo), out=photo.parent, overwrite=True))
    assert photo.read_bytes() == (CROWD_IMAGES / "103319.jpg").read_bytes()
    assert sorted(photo.parent.iterdir()) == [photo]
    # A link to the photo, with --out the link's folder: drawing there would write through the link.
    link = tmp_path / "links" / "103319.jpg"
    link.parent.mkdir()
    link.symlink_to(photo)
    with pytest.raises(HrnextError, match="is the folder of the source 103319.jpg"):
        run_predict(replace(config, source=str(link), out=link.parent, overwrite=True))
    assert photo.read_bytes() == (CROWD_IMAGES / "103319.jpg").read_bytes()


def test_a_folder_of_frames_is_tracked_and_written_as_a_video_with_sequence(tmp_path, models, caplog):
    # A video's frames as files (PoseTrack's sequences, ffmpeg's output): with --sequence the same
    # tracking, --detect-every and outputs as the video, plus each line's file name and id; frames
    # in number order (ffmpeg's frame2 before frame10); a frame of another size is scaled into the
    # video, never dropped.
    n = 11
    video = make_video(tmp_path / "clip.mp4", frames=n)
    frames = tmp_path / "seq"
    frames.mkdir()
    capture = cv2.VideoCapture(str(video))
    for i in range(n):
        image = capture.read()[1]
        cv2.imwrite(str(frames / f"frame{i}.jpg"), cv2.resize(image, (400, 300)) if i == 5 else image)
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = run_predict(PredictConfig(str(frames), models["pose"], detector=models["jitter"], out=out, batch=5,
                                           detect_every=2, sequence=True, fps=10, progress=False))
    assert result.frames == n and {f.name for f in result.files} == {"seq.mp4", "seq.jsonl", "summary.json"}
    lines = [json.loads(line) for line in (out / "seq.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["file_name"], r["image_id"]) for r in lines] == [(i, f"frame{i}.jpg", i) for i in range(n)]
    assert [r["time_s"] for r in lines] == [i / 10 for i in range(n)]
    assert all(sorted(p["track_id"] for p in r["people"]) == [1, 2] for r in lines)
    boxes = np.array([[p["bbox"] for p in sorted(r["people"], key=lambda p: p["track_id"])] for r in lines])
    # Carried between detections; frame5, 400x300, gets them scaled to its own pixels (x 1.25).
    scale = np.where(np.arange(n) == 5, 1.25, 1.0)
    np.testing.assert_allclose(boxes[1::2], boxes[:-1:2] * scale[1::2, None, None], atol=0.02)
    assert not np.allclose(boxes[5], boxes[4])
    capture = cv2.VideoCapture(str(out / "seq.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == n and capture.get(cv2.CAP_PROP_FPS) == 10
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "sequence" and summary["rescaled_frames"] == ["frame5.jpg"]
    assert "frame5.jpg is 400x300, the video 320x240" in caplog.text


def test_odd_sources_are_named_timed_and_read_whole(tmp_path, models, monkeypatch, caplog):
    """A folder named by digits is a folder, not a camera; "." is named by the folder it is; a
    sequence's unreadable frame leaves no gap in time_s (the written video's clock); a damaged
    video says it ended early; a stream without a frame count takes boxes for any frame."""
    picture = cv2.imread(str(CROWD_IMAGES / "103319.jpg"))
    folder = tmp_path / "2023"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), picture)
    (folder / "1.jpg").write_bytes(b"half a download")
    common = {"model": models["pose"], "detector": models["detector"], "progress": False, "sequence": True, "fps": 10}
    monkeypatch.chdir(tmp_path)
    result = run_predict(PredictConfig("2023", out=tmp_path / "digits", **common))
    assert result.summary["kind"] == "sequence" and result.summary["skipped_unreadable"] == ["1.jpg"]
    lines = [json.loads(line) for line in (tmp_path / "digits" / "2023.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["time_s"]) for r in lines] == [(0, 0.0), (2, 0.1)]  # two frames in the video
    monkeypatch.chdir(folder)
    result = run_predict(PredictConfig(".", out=tmp_path / "dot", **common))
    assert sorted(p.name for p in result.files) == ["2023.jsonl", "2023.mp4", "summary.json"]

    # An AVI cut short: its header counts 12 frames, 4 decode.
    full, cut = tmp_path / "full.avi", tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(12):
        writer.write(cv2.resize(picture, (320, 240)))
    writer.release()
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 4])
    common.pop("sequence"), common.pop("fps")
    with caplog.at_level("WARNING"):
        result = run_predict(PredictConfig(str(cut), out=tmp_path / "cut", **common))
    stated = "of the 12 frames its header states: the file is truncated or damaged"
    assert 0 < result.frames < 12 and stated in result.summary["ended_early"] and stated in caplog.text
    assert run_predict(PredictConfig(str(full), out=tmp_path / "full", **common)).summary["ended_early"] is None

    # A raw MJPEG stream has no frame count: boxes for its frames 3 and 5 are its boxes.
    stream = tmp_path / "stream.mjpeg"
    stream.write_bytes(b"".join(cv2.imencode(".jpg", cv2.resize(picture, (320, 240)))[1].tobytes()
                                for _ in range(8)))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": i, "bbox": [40, 30, 120, 180], "score": 0.9} for i in (3, 5)]))
    result = run_predict(PredictConfig(str(stream), models["pose"], boxes=boxes, out=tmp_path / "stream",
                                       progress=False))
    lines = [json.loads(line) for line in (tmp_path / "stream" / "stream.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and [r["frame"] for r in lines if r["people"]] == [3, 5]


def test_bad_inputs_are_one_line(tmp_path, models):
    def fails(match, **kwargs):
        kwargs = {"source": str(CROWD_IMAGES), "model": models["pose"], "detector": models["detector"],
                  "out": tmp_path / "o", "progress": False, **kwargs}
        with pytest.raises(HrnextError, match=match) as info:
            run_predict(PredictConfig(**kwargs))
        assert "\n" not in str(info.value)
        assert not (tmp_path / "o").exists()  # nothing written

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    fails("unreadable image", source=str(broken))
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    fails("cannot open video|gives no frame", source=str(tmp_path / "broken.mp4"))
    fails("camera 57 cannot be opened", source="57")
    fails("not found", source=str(tmp_path / "missing.jpg"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures here")
    fails(r"folder .*notes holds no images \(\.jpg", source=str(tmp_path / "notes"))
    (tmp_path / "seqs" / "seq1").mkdir(parents=True)  # a dataset's sequences: name a subfolder to pass
    (tmp_path / "seqs" / "seq1" / "000001.jpg").write_bytes(b"")
    fails(r"holds no images .*; 1 of its subfolders holds images: pass one, e\.g\. .*seqs/seq1",
          source=str(tmp_path / "seqs"))
    (tmp_path / "notes" / "talk.mp4").write_bytes(b"")  # a folder of videos: name one to pass
    fails(r"holds no images .*; it holds 1 video \(talk\.mp4\): pass a video itself, e\.g\. .*notes/talk\.mp4",
          source=str(tmp_path / "notes"))
    fails(r"--detect-every 2 carries boxes between a video's frames, and .* is a folder of images.*--sequence",
          detect_every=2)
    fails(r"--sequence reads a folder of a video's frames, and .*broken\.mp4 is no folder", sequence=True,
          source=str(tmp_path / "broken.mp4"))
    fails(r"--fps 25(\.0)? sets the frame rate of a --sequence folder's video", fps=25.0)
    fails(r"first frame of the sequence .* cannot be read: unreadable image", sequence=True,
          source=str(_folder_with(tmp_path / "badseq", broken)))
    fails("says it takes 128x96 crops but its input is 64x48",
          model=pose_network(tmp_path / "lying.onnx", declared_size=(128, 96)))
    fails(r"outputs \(1, 10\)", detector=__import__("tests.predict_graphs").predict_graphs.odd_detector(
        tmp_path / "odd.onnx"))


def _folder_with(folder: Path, *files: Path) -> Path:
    folder.mkdir()
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def test_an_unreadable_image_in_a_folder_is_skipped_and_listed(tmp_path, models, caplog):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("103319.jpg", "106848.jpg"):
        shutil.copyfile(CROWD_IMAGES / name, folder / name)  # not its read-only mode: the test rewrites it
    (folder / "104000.jpg").write_bytes(b"half a download")
    config = PredictConfig(str(folder), models["pose"], detector=models["detector"], out=tmp_path / "o",
                           progress=False)
    with caplog.at_level("WARNING"):
        result = run_predict(config)
    assert result.frames == 2 and result.summary["skipped_unreadable"] == ["104000.jpg"]
    assert result.summary["error"] is None
    assert any("skipped: unreadable image" in r.getMessage() and "104000.jpg" in r.getMessage() for r in caplog.records)
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {r["image_id"] for r in results} == {103319, 106848}
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["103319.jpg", "106848.jpg", "results.json",
                                                                   "summary.json"]

    # Nothing readable: an error, and the summary of the failed run says so (and lists its files for --overwrite).
    for name in ("103319.jpg", "106848.jpg"):
        (folder / name).write_bytes(b"")
    with pytest.raises(HrnextError, match=r"none of the 3 images of .*photos could be read \(first: 103319\.jpg\)"):
        run_predict(PredictConfig(str(folder), models["pose"], detector=models["detector"], out=tmp_path / "bad",
                                  progress=False))
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["error"].startswith("none of the 3 images") and summary["frames"] == 0
    assert summary["files"] == ["results.json"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_ctrl_c_leaves_complete_files(tmp_path, models, signum, code):
    """Ctrl-C, or SIGTERM (kill, timeout, docker stop: was death with an unplayable mp4 and no
    summary), ends the run between frames with every file whole; SIGTERM's exit code is 143."""
    video = make_video(tmp_path / "long.mp4", frames=400, size=(160, 120))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "hrnext_trt", "predict", str(video), "--model",
                                str(models["pose"]), "--detector", str(models["detector"]), "--out", str(out),
                                "--batch", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = out / "long.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (lines.exists() and lines.read_text().count("\n") >= 5):
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr[-2000:]
    assert "interrupted after" in stdout
    records = [json.loads(line) for line in lines.read_text().splitlines()]  # every line whole
    assert 5 <= len(records) < 400
    capture = cv2.VideoCapture(str(out / "long.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == len(records)  # the mp4 was finalised with exactly the frames reported
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["frames"] == len(records)


def _can_mount_tmpfs() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs user namespaces to mount a small tmpfs (a full disk)")
def test_a_full_disk_is_one_line_and_the_summary_lists_what_was_written(tmp_path, models):
    """predict into a folder on a disk that fills up: one line naming the file and the full disk,
    exit 2 (was: a 47-line traceback), no temporary file left, and the files written are listed so a
    rerun with --overwrite may replace them."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    big = cv2.resize(cv2.imread(str(bundled_dataset_root("coco-mini") / "val2017" / "000000040083.jpg")), (800, 600))
    for i in range(6):
        cv2.imwrite(str(pictures / f"{i}.jpg"), np.clip(big.astype(np.int16) + i, 0, 255).astype(np.uint8))
    disk = tmp_path / "disk"
    disk.mkdir()
    room = 2.5 * (pictures / "0.jpg").stat().st_size // 1024  # about two annotated pictures
    command = (f"mount -t tmpfs -o size={room:.0f}k tmpfs {disk} && {sys.executable} -m hrnext_trt predict {pictures} "
               f"--model {models['pose']} --detector {models['detector']} --out {disk}/out; echo rc=$?; "
               f"ls -a {disk}/out; cat {disk}/out/summary.json")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "rc=2" in done.stdout and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(disk / "out") in errors[0], errors
    listing = done.stdout.split("rc=2", 1)[1]
    assert ".tmp" not in listing
    summary = json.loads(listing[listing.index("{"):])
    written = set(listing[:listing.index("{")].split()) - {".", "..", "summary.json"}
    assert any(name.endswith(".jpg") for name in written) and len(written) < 7  # some pictures, not all
    assert set(summary["files"]) == written and "No space left on device" in summary["error"]


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_writes(tmp_path, models, caplog):
    video = make_video(tmp_path / "long.mp4", frames=400, size=(160, 120))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "hrnext_trt", "predict", str(video), "--model",
                                str(models["pose"]), "--detector", str(models["detector"]), "--out", str(out),
                                "--batch", "2"], env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ((out / "long.jsonl").exists()
                                              and (out / "long.jsonl").read_text().count("\n") >= 2):
            time.sleep(0.05)
        with pytest.raises(HrnextError, match=rf"output folder {re.escape(str(out))} is in use by another predict "
                                              rf"run \(pid {process.pid} on .*\): wait for it to finish or use another "
                                              r"--out"):
            run_predict(PredictConfig(str(video), models["pose"], detector=models["detector"], out=out,
                                      overwrite=True, progress=False))
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(summary["files"] + ["summary.json"])  # no lock left
    # A killed run's lock is stale: the next run takes the folder over, saying so.
    (out / ".predict.lock").write_text(json.dumps({"pid": 2 ** 22 + 7, "host": socket.gethostname()}))
    run_predict(PredictConfig(str(video), models["pose"], detector=models["detector"], out=out, overwrite=True,
                              max_frames=2, progress=False))
    assert "removing the stale lock" in caplog.text and not (out / ".predict.lock").exists()


def test_an_unreadable_file_in_a_sequence_keeps_the_detection_cadence(tmp_path, models):
    """A sequence's unreadable file is no frame: the detector runs on every N-th frame shown and the
    smoothing clock is the written video's (was: counted by file position, so predict and
    estimator.video() on the same frames detected on different frames and smoothed differently)."""
    from hrnext_trt.predict import PoseEstimator

    folder = tmp_path / "seq"
    folder.mkdir()
    base = cv2.resize(cv2.imread(str(bundled_dataset_root("coco-mini") / "val2017" / "000000040083.jpg")), (320, 240))
    readable = []
    for i in range(8):
        frame = np.clip(base.astype(np.int16) + 12 * i, 0, 255).astype(np.uint8)  # boxes move with brightness
        if i == 2:
            (folder / f"{i:06d}.png").write_bytes(b"not a png")
            continue
        cv2.imwrite(str(folder / f"{i:06d}.png"), frame)
        readable.append(frame)
    run_predict(PredictConfig(str(folder), models["pose"], detector=models["jitter"], out=tmp_path / "o",
                              sequence=True, fps=10, detect_every=2, smooth=True, batch=3, progress=False))
    lines = [json.loads(line) for line in (tmp_path / "o" / "seq.jsonl").read_text().splitlines()]
    with PoseEstimator(models["pose"], models["jitter"], device="cpu") as estimator:
        video = estimator.video(fps=10, detect_every=2, smooth=True)
        for line, frame in zip(lines, readable, strict=True):
            poses = video(frame)
            assert [p["bbox"] for p in line["people"]] == [p["bbox"] for p in poses.people()]
            np.testing.assert_allclose([p["keypoints"] for p in line["people"]],
                                       [p["keypoints"] for p in poses.people()], atol=0.011)


def test_a_placeholder_frame_rate_is_taken_as_30_and_said(tmp_path, caplog):
    from hrnext_trt.predict.sources import open_source

    path = tmp_path / "fast.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1500, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    if cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) < 1000:
        pytest.skip("this OpenCV wrote another frame rate")
    source = open_source(str(path), None)
    try:
        assert source.fps == 30.0
    finally:
        source.close()
    assert f"video {path} states 1500 frames/s: taken as 30 for its frame times, the written video and " \
           "--smooth" in caplog.text


def test_a_sigterm_during_a_frame_waits_for_the_frame_to_be_written():
    """SIGTERM raised at once wherever the loop was: between a frame's video frame and its JSON line
    the mp4 held one frame more than the lines (seen once in 3 runs on a loaded 2-core machine). It
    now ends the loop between frames, as Ctrl-C does, with SIGTERM's exit code; a second one raises."""
    script = """
import os, signal, sys
from hrnext_trt import interrupts
from hrnext_trt.predict.run import _stop_requested_on_signal
signal.signal(signal.SIGTERM, interrupts._on_sigterm)  # the CLI's handler
with _stop_requested_on_signal() as stop:
    os.kill(os.getpid(), signal.SIGTERM)
    written = sum(range(100000))  # the rest of the frame's writes: no KeyboardInterrupt among them
    print("stop", stop.is_set(), "sigterm", interrupts.by_sigterm(), "code", interrupts.exit_code())
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(100000))
    except KeyboardInterrupt:
        print("second raises")
print("restored", signal.getsignal(signal.SIGTERM) is interrupts._on_sigterm)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:3] == ["stop True sigterm True code 143", "second raises", "restored True"]
