"""The top-down pipeline end to end: oracle round trip to AP, detector boxes, batching, errors."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hrnext_trt.data.codec import HeatmapCodec
from hrnext_trt.data.datasets import load_dataset
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, transform_points
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation import evaluate_results
from hrnext_trt.pipeline import iter_batches, predict

INPUT = (256, 192)


def _oracle_infer(dataset):
    """An ``infer`` that answers each crop with the ground truth encoded in that crop's frame.

    Crops are recognised by their bytes (the real crops from ``iter_batches``, and their mirror
    images for the flip test), so the oracle does not depend on the order ``predict`` uses.
    """
    codec = HeatmapCodec(INPUT)
    meta = dataset.meta
    centers, scales = box_to_center_scale(np.array([inst.box for inst in dataset.instances]), INPUT)
    table = {}
    for batch in iter_batches(dataset, INPUT, batch_size=3):
        for crop, i in zip(batch.images, batch.indices):
            kp = dataset.instances[i].keypoints
            joints = transform_points(kp[:, :2], affine_matrix(centers[i], scales[i], 0.0, INPUT))
            table[crop.tobytes()] = codec.encode(joints, kp[:, 2] > 0)[0]
            mirrored = joints[list(meta.flip_index)].copy()
            mirrored[:, 0] = INPUT[1] - 1 - mirrored[:, 0]
            table[np.ascontiguousarray(crop[..., ::-1]).tobytes()] = \
                codec.encode(mirrored, kp[list(meta.flip_index), 2] > 0)[0]
    calls = []

    def infer(images):
        calls.append(len(images))
        return np.stack([table[image.tobytes()] for image in images])

    return infer, calls


@pytest.mark.parametrize("name, sub, split", [("crowdpose", "crowdpose-mini", "test"), ("coco", "coco-mini", "val")])
@pytest.mark.parametrize("flip_test", [False, True])
def test_oracle_round_trip_reaches_full_ap(data_dir, name, sub, split, flip_test):
    dataset = load_dataset(name, data_dir / sub, split, boxes="gt")
    infer, calls = _oracle_infer(dataset)
    results = predict(dataset, infer, INPUT, batch_size=4, flip_test=flip_test, progress=False)
    assert {r["image_id"] for r in results} == {inst.image_id for inst in dataset.instances}
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 3 * dataset.meta.num_joints for r in results)
    assert max(calls) <= 4 and sum(calls) == len(dataset) * (2 if flip_test else 1)
    metrics = evaluate_results(name, dataset.ann_file, results)
    assert metrics["AP"] >= 0.99, metrics
    # Decoded joints are back in image pixels: within half a heatmap pixel (plus the flip test's
    # quarter) of the annotation, for every labelled joint that lies inside its crop.
    by_image = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(np.reshape(r["keypoints"], (-1, 3)))
    for inst, scale in zip(dataset.instances, box_to_center_scale(
            np.array([inst.box for inst in dataset.instances]), INPUT)[1]):
        shown = inst.keypoints[:, 2] > 0
        # (a joint off the crop decodes to the Gaussian's tail on the border, with a lower score)
        err = min(np.abs(p[shown & (p[:, 2] > 0.99), :2] - inst.keypoints[shown & (p[:, 2] > 0.99), :2]).max()
                  for p in by_image[inst.image_id])
        assert err <= 3.01 * scale[0] / INPUT[1]


def test_detector_boxes_and_images_without_boxes(data_dir, tmp_path):
    root = tmp_path / "crowdpose"
    shutil.copytree(data_dir / "crowdpose-mini", root)
    det_file = root / "annotations" / "det_for_crowd_test_0.1_0.5.json"
    dets = json.loads(det_file.read_text())
    kept_image = dets[0]["image_id"]
    det_file.write_text(json.dumps([d for d in dets if d["image_id"] == kept_image]))
    dataset = load_dataset("crowdpose", root, "test", boxes="det")
    rng = np.random.default_rng(0)
    fake = rng.uniform(0, 1, (1, 14, 64, 48)).astype(np.float32)
    results = predict(dataset, lambda x: np.repeat(fake, len(x), 0), INPUT, batch_size=2, flip_test=False,
                      progress=False)
    assert results and {r["image_id"] for r in results} == {kept_image}
    box_scores = sorted(inst.box_score for inst in dataset.instances)
    # Instance score = box score x mean joint score above 0.2: here identical joints for all.
    joint = fake[0].reshape(14, -1).max(1)
    expected = joint[joint > 0.2].mean()
    assert max(r["score"] for r in results) == pytest.approx(box_scores[-1] * expected, rel=1e-5)
    assert set(evaluate_results("crowdpose", dataset.ann_file, results)) >= {"AP", "AP_easy"}


def test_identical_predictions_are_suppressed_by_oks_nms(data_dir):
    dataset = load_dataset("coco", data_dir / "coco-mini", "val", boxes="gt")
    # One heatmap answer for every crop: crops of one image differ, so poses differ; but two
    # copies of the same instance must collapse to one.
    dataset.instances = [dataset.instances[0], dataset.instances[0]]
    peak = np.zeros((1, 17, 64, 48), np.float32)
    peak[0, :, 30, 20] = 1.0
    results = predict(dataset, lambda x: np.repeat(peak, len(x), 0), INPUT, flip_test=False, progress=False)
    assert len(results) == 1


def test_iter_batches_covers_every_instance_in_order(data_dir):
    dataset = load_dataset("coco", data_dir / "coco-mini", "train", boxes="gt")
    batches = list(iter_batches(dataset, INPUT, batch_size=7, threads=2))
    sizes = [len(b.indices) for b in batches]
    assert sizes[:-1] == [7] * (len(batches) - 1) and 0 < sizes[-1] <= 7
    assert np.concatenate([b.indices for b in batches]).tolist() == list(range(len(dataset)))
    assert all(b.images.shape == (len(b.indices), 3, 256, 192) and b.images.dtype == np.float32 for b in batches)


def test_wrong_heatmap_shape_and_missing_image_are_one_line(data_dir, tmp_path):
    dataset = load_dataset("ochuman", data_dir / "ochuman-mini", "test", boxes="gt")
    with pytest.raises(HrnextError) as exc:
        predict(dataset, lambda x: np.zeros((len(x), 14, 64, 48), np.float32), INPUT, progress=False)
    assert "\n" not in str(exc.value) and "17" in str(exc.value) and "14" in str(exc.value)
    nan = np.full((1, 17, 64, 48), np.nan, np.float32)
    with pytest.raises(HrnextError, match="NaN"):
        predict(dataset, lambda x: np.repeat(nan, len(x), 0), INPUT, progress=False)
    root = tmp_path / "ochuman"
    shutil.copytree(data_dir / "ochuman-mini", root)
    missing = root / "images" / "003799.jpg"
    missing.unlink()
    dataset = load_dataset("ochuman", root, "test", boxes="gt")
    with pytest.raises(HrnextError) as exc:
        predict(dataset, lambda x: np.zeros((len(x), 17, 64, 48), np.float32), INPUT, progress=False)
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)


def test_deployment_modules_do_not_import_torch():
    code = ("import sys, hrnext_trt.pipeline, hrnext_trt.data, hrnext_trt.data.transforms, hrnext_trt.evaluation, "
            "hrnext_trt.visualize, hrnext_trt.cli.evaluate, hrnext_trt.cli.visualize; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_flip_test_survives_a_backend_reusing_its_output_buffer(data_dir):
    dataset = load_dataset("coco", data_dir / "coco-mini", "val", boxes="gt")
    infer, _ = _oracle_infer(dataset)
    buffer = np.empty((4, 17, 64, 48), np.float32)

    def reusing_infer(images):  # like a runner handing back its one host output buffer
        buffer[:len(images)] = infer(images)
        return buffer[:len(images)]

    expected = predict(dataset, infer, INPUT, batch_size=4, progress=False)
    assert predict(dataset, reusing_infer, INPUT, batch_size=4, progress=False) == expected
