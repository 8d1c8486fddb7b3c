"""Pose pictures, and smoke tests of the evaluate and visualize commands."""

import json

import cv2
import numpy as np
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.data.files import read_image
from hrnext_trt.keypoints import CROWDPOSE
from hrnext_trt.visualize import VisualizeConfig, draw_poses, visualize

CROWDPOSE_ANN = "crowdpose-mini/annotations/mmpose_crowdpose_test.json"


def _gt_results(ann_file):
    data = json.loads(ann_file.read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
            for a in data["annotations"]]


def test_draw_poses_colours_sides_and_hides_low_scores():
    image = np.zeros((200, 200, 3), np.uint8)
    pose = np.zeros((1, 14, 3))
    pose[0, :, :2] = 100
    pose[0, 0] = (50, 50, 1.0)  # left shoulder
    pose[0, 2] = (50, 150, 1.0)  # left elbow: a left limb
    pose[0, 1] = (150, 50, 0.1)  # right shoulder, below the joint threshold
    canvas = draw_poses(image, pose, CROWDPOSE, kpt_thr=0.3)
    assert image.sum() == 0  # the input is not drawn on
    limb = canvas[100, 48:53].max(0)  # on the left limb, halfway
    assert limb[2] > 200 and limb[0] < 50  # orange (BGR), the left side's colour
    assert canvas[50, 150].sum() == 0


def test_visualize_writes_ground_truth_and_predictions(data_dir, tmp_path):
    gt_files = visualize(VisualizeConfig("crowdpose", data_dir / "crowdpose-mini", "test", tmp_path / "gt"))
    assert len(gt_files) == 2 and all(p.suffix == ".png" for p in gt_files)
    results = _gt_results(data_dir / CROWDPOSE_ANN)
    pred_files = visualize(VisualizeConfig("crowdpose", data_dir / "crowdpose-mini", "test", tmp_path / "pred",
                                           results=results, max_images=1, image_format="jpg"))
    assert len(pred_files) == 1 and pred_files[0].suffix == ".jpg"
    drawn = cv2.imread(str(gt_files[0]))
    original = read_image(data_dir / "crowdpose-mini" / "images" / gt_files[0].name.replace(".png", ".jpg"))
    assert drawn.shape == original.shape
    assert 0.001 < np.mean(np.any(drawn != original, axis=2)) < 0.2  # skeletons drawn, image still there


def test_evaluate_command_prints_one_json_object(data_dir, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_gt_results(data_dir / CROWDPOSE_ANN)))
    runner = CliRunner()
    out = runner.invoke(main, ["evaluate", "--dataset", "crowdpose", "--ann", str(data_dir / CROWDPOSE_ANN),
                               "--results", str(results), "--json"])
    assert out.exit_code == 0, out.output
    metrics = json.loads(out.stdout)
    assert metrics["AP"] == 1.0 and {"AP50", "AP75", "AR", "AP_easy", "AP_medium", "AP_hard"} <= set(metrics)
    # The mini split has no easy image: nothing to score is null, as in trt-eval's reports (was -1.0).
    assert metrics["AP_easy"] is None and metrics["AP_medium"] == 1.0
    table = runner.invoke(main, ["evaluate", "--dataset", "crowdpose", "--ann", str(data_dir / CROWDPOSE_ANN),
                                 "--results", str(results)])
    assert table.exit_code == 0 and "AP_medium" in table.output
    wrong = runner.invoke(main, ["evaluate", "--dataset", "coco", "--ann", str(data_dir / CROWDPOSE_ANN),
                                 "--results", str(results)])
    assert wrong.exit_code == 2
    assert len(wrong.stderr.strip().splitlines()) == 1 and "14 keypoints" in wrong.stderr


def test_visualize_command(data_dir, tmp_path):
    out = CliRunner().invoke(main, ["visualize", "--dataset", "ochuman", "--data-root", str(data_dir / "ochuman-mini"),
                                    "--out", str(tmp_path / "vis"), "--max-images", "2"])
    assert out.exit_code == 0, out.output
    assert len(list((tmp_path / "vis").glob("*.png"))) == 2


def test_visualize_names_every_picture_and_owns_its_folder(data_dir, tmp_path):
    # PoseTrack: every video's first frame is 000000.jpg; each picture keeps its own name.
    root = tmp_path / "posetrack"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(data_dir / "posetrack18-mini" / "images")
    runner = CliRunner()
    assert runner.invoke(main, ["convert", "posetrack", str(data_dir / "posetrack18-mini" / "annotations" / "val"),
                                "--out", str(root / "annotations" / "posetrack18_val.json")]).exit_code == 0
    out = tmp_path / "vis"
    drawn = runner.invoke(main, ["visualize", "--dataset", "posetrack", "--data-root", str(root), "--out", str(out)])
    assert drawn.exit_code == 0, drawn.output
    videos = sorted(p.name for p in (data_dir / "posetrack18-mini" / "images" / "val").iterdir())
    assert sorted(p.name for p in out.glob("*.png")) == [f"{v}_000000.png" for v in videos]
    assert json.loads((out / "visualize.json").read_text())["files"] == [f"{v}_000000.png" for v in videos]

    # Another run into that folder is refused (was: pictures of both runs mixed, exit 0) ...
    (out / "notes.txt").write_text("mine")
    crowd = ["visualize", "--dataset", "crowdpose", "--data-root", str(data_dir / "crowdpose-mini"), "--out", str(out)]
    refused = runner.invoke(main, crowd)
    assert refused.exit_code == 2 and "is not empty" in refused.stderr and "--overwrite" in refused.stderr
    assert len(list(out.glob("*.png"))) == 3
    # ... also with --overwrite while somebody else's file is there (nothing removed) ...
    refused = runner.invoke(main, crowd + ["--overwrite"])
    assert refused.exit_code == 2 and "holds 1 file no previous visualize run listed in its visualize.json " \
                                      "(notes.txt)" in refused.stderr, refused.stderr
    assert len(list(out.glob("*.png"))) == 3
    # ... and with --overwrite replaces the previous run's pictures.
    (out / "notes.txt").unlink()
    replaced = runner.invoke(main, crowd + ["--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in out.iterdir()) == ["103319.png", "106848.png", "visualize.json"]


def test_thresholds_that_leave_nothing_to_draw_are_said(data_dir, tmp_path, caplog):
    """Pictures identical to the photos passed for people not found (was: no word, "wrote 2 pictures")."""
    import logging

    results = _gt_results(data_dir / CROWDPOSE_ANN)
    for r in results:
        r["keypoints"] = [v if k % 3 < 2 else 0.8 for k, v in enumerate(r["keypoints"])]  # joint scores 0..1
    caplog.set_level(logging.WARNING, logger="hrnext_trt")
    visualize(VisualizeConfig("crowdpose", data_dir / "crowdpose-mini", "test", tmp_path / "a", results=results,
                              score_thr=0.95))
    assert f"none of the {len(results)} predicted people scores --score-thr 0.95 or more (the best: 0.9)" \
        in caplog.text
    caplog.clear()
    visualize(VisualizeConfig("crowdpose", data_dir / "crowdpose-mini", "test", tmp_path / "b", results=results,
                              kpt_thr=1.0))
    assert "no joint scores above --kpt-thr 1: the pictures show the images without poses" in caplog.text
    caplog.clear()
    visualize(VisualizeConfig("crowdpose", data_dir / "crowdpose-mini", "test", tmp_path / "c", results=results))
    assert "warning" not in caplog.text.lower() and not caplog.records
