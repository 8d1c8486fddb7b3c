"""The top-down pipeline over any ``infer(images) -> heatmaps`` callable (numpy only).

crop (thread pool) -> batch -> infer -> flip test -> decode -> back to image pixels ->
rescoring -> OKS-NMS -> COCO-format results. Only ``infer`` is backend-specific, so PyTorch,
ONNX Runtime and TensorRT results differ by their network outputs alone.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from hrnext_trt.contract import check_count
from hrnext_trt.data.codec import HeatmapCodec, flip_back
from hrnext_trt.data.datasets import PoseDataset
from hrnext_trt.data.files import read_image
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, crop_images, invert_affine, \
    normalize_crops, transform_points, warp_crops
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation.nms import oks_nms
from hrnext_trt.progress import progress_bar

Infer = Callable[[np.ndarray], np.ndarray]

JOINT_SCORE_THR = 0.2  # joints above it count in the instance score (mmpose vis_thr)
OKS_NMS_THR = 0.9


@dataclass
class CropBatch:
    images: np.ndarray  # (B, 3, H, W) float32, normalised network input
    indices: np.ndarray  # (B,) positions in dataset.instances
    centers: np.ndarray  # (B, 2) crop centers in image pixels
    scales: np.ndarray  # (B, 2) crop sizes in image pixels


def iter_batches(dataset: PoseDataset, input_size: tuple[int, int], batch_size: int = 32,
                 threads: int | None = None, prefetch: int = 2) -> Iterator[CropBatch]:
    """Crops of every instance of ``dataset``, in order, ``batch_size`` at a time (the last may be
    smaller). A thread pool (OpenCV releases the GIL) reads and crops up to ``prefetch`` batches
    ahead of the consumer, each image once per batch for all its people, straight into the
    batch's array."""
    check_count("batch size", batch_size)
    input_size = (int(input_size[0]), int(input_size[1]))
    n = len(dataset.instances)
    boxes = np.array([inst.box for inst in dataset.instances], dtype=np.float32).reshape(-1, 4)
    centers, scales = box_to_center_scale(boxes, input_size)
    image_starts = _image_starts(dataset)

    def crop_run(out: np.ndarray, lo: int, hi: int) -> None:
        inst = dataset.instances[lo]
        image = dataset.check_image(inst.image_id, read_image(inst.image_path))
        matrices = affine_matrix(centers[lo:hi], scales[lo:hi], 0.0, input_size)
        normalize_crops(warp_crops(image, matrices, input_size), out=out)

    def submit(start: int):
        stop = min(start + batch_size, n)
        images = np.empty((stop - start, 3) + input_size, dtype=np.float32)
        inner = image_starts[(image_starts > start) & (image_starts < stop)]
        cuts = [start, *inner.tolist(), stop]  # runs of one image inside the batch
        futures = [pool.submit(crop_run, images[lo - start:hi - start], lo, hi) for lo, hi in zip(cuts, cuts[1:])]
        return start, stop, images, futures

    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1), thread_name_prefix="crop") as pool:
        pending = deque(submit(start) for start in range(0, min(n, prefetch * batch_size), batch_size))
        next_start = min(n, prefetch * batch_size)
        try:
            while pending:
                start, stop, images, futures = pending.popleft()
                for future in futures:
                    future.result()
                if next_start < n:
                    pending.append(submit(next_start))
                    next_start += batch_size
                yield CropBatch(images, np.arange(start, stop), centers[start:stop], scales[start:stop])
        finally:
            for _, _, _, futures in pending:
                for future in futures:
                    future.cancel()


def _image_starts(dataset: PoseDataset) -> np.ndarray:
    """Positions in ``dataset.instances`` where a run of one image's instances begins."""
    paths = [inst.image_path for inst in dataset.instances]
    return np.array([i for i in range(len(paths)) if i == 0 or paths[i] != paths[i - 1]], dtype=np.int64)


def infer_heatmaps(infer: Infer, images: np.ndarray, num_joints: int,
                   flip_index: tuple[int, ...] | None = None) -> np.ndarray:
    """Heatmaps (B, J, H/4, W/4) of crops; with ``flip_index``, averaged with the heatmaps of the
    mirrored crops (flip test; ``infer`` is called twice, never on a larger batch)."""
    heatmaps = _checked(infer(images), images, num_joints)
    if flip_index is not None:
        mirrored = _checked(infer(mirror_images(images)), images, num_joints)
        heatmaps = (heatmaps + flip_back(mirrored, flip_index)) * 0.5
    return heatmaps


def fill_batch(crops: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` crops for timing: ``crops`` in order, repeated where there are fewer."""
    return np.ascontiguousarray(np.resize(crops, (batch,) + crops.shape[1:]))


def run_batched(infer: Callable, images: np.ndarray, chunk: int, min_batch: int = 1):
    """``infer`` (images -> an array, or a dict of arrays) over ``images`` in chunks of ``chunk``; a
    chunk below ``min_batch`` (a model's smallest or only batch size) is padded with repeated crops
    (``fill_batch``) whose outputs are dropped."""
    parts = []
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        parts.append((infer(fill_batch(part, min_batch) if len(part) < min_batch else part), len(part)))
    if parts and isinstance(parts[0][0], dict):
        return {name: np.concatenate([out[name][:n] for out, n in parts]) for name in parts[0][0]}
    return np.concatenate([out[:n] for out, n in parts])


def mirror_images(images: np.ndarray) -> np.ndarray:
    """Horizontally mirrored copy of crops (B, 3, H, W) (OpenCV: fast, and releases the GIL)."""
    rows = np.ascontiguousarray(images).reshape(-1, images.shape[-1])
    return cv2.flip(rows, 1).reshape(images.shape)


def _checked(heatmaps, images: np.ndarray, num_joints: int) -> np.ndarray:
    # A copy: a backend may hand back the same output buffer on its next call (flip test).
    heatmaps = np.array(heatmaps, dtype=np.float32)
    b, _, h, w = images.shape
    expected = (b, num_joints, h // 4, w // 4)
    if heatmaps.shape != expected:
        raise HrnextError(f"the network returned heatmaps of shape {heatmaps.shape} for {b} crops of {h}x{w}, "
                          f"expected {expected}: does the model match the dataset's joints and the input size?")
    if not np.isfinite(heatmaps).all():
        raise HrnextError("the network returned NaN or infinite heatmaps (an overflow in reduced precision?)")
    return heatmaps


def decode_heatmaps(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                    input_size: tuple[int, int]) -> np.ndarray:
    """Keypoints (B, J, 3): x, y in image pixels and the heatmap score, through the inverse crop."""
    coords, scores = HeatmapCodec(input_size).decode(heatmaps)
    to_image = invert_affine(affine_matrix(centers, scales, 0.0, input_size))
    keypoints = np.empty(coords.shape[:2] + (3,), dtype=np.float32)
    keypoints[..., :2] = transform_points(coords, to_image)
    keypoints[..., 2] = scores
    return keypoints


class PersonBatch:
    """People (dataset instances) with their decoded images in memory, for end-to-end timing."""

    def __init__(self, people: list, input_size: tuple[int, int]):
        self.input_size = input_size
        self.centers, self.scales = box_to_center_scale(np.stack([p.box for p in people]), input_size)
        paths = list(dict.fromkeys(p.image_path for p in people))
        images = {path: read_image(path) for path in paths}
        # Runs of people of the same image, cropped together as iter_batches does.
        self.groups = [(images[path], np.array([i for i, p in enumerate(people) if p.image_path == path]))
                       for path in paths]

    def crops(self) -> np.ndarray:
        return np.concatenate([crop_images(image, self.centers[idx], self.scales[idx], self.input_size)
                               for image, idx in self.groups])

    def run(self, infer: Infer) -> np.ndarray:
        """Crop, infer, decode: keypoints (B, J, 3) in image pixels."""
        return decode_heatmaps(infer(self.crops()), self.centers, self.scales, self.input_size)


def instance_scores(keypoints: np.ndarray, box_scores: np.ndarray) -> np.ndarray:
    """Box score x mean score of the joints above 0.2 (N,), for keypoints (N, J, 3)."""
    joint_scores = keypoints[..., 2]
    confident = joint_scores > JOINT_SCORE_THR
    mean_conf = np.where(confident, joint_scores, 0).sum(1) / np.maximum(confident.sum(1), 1)
    return np.asarray(box_scores, dtype=np.float64) * mean_conf


def pose_nms(keypoints: np.ndarray, scores: np.ndarray, scales: np.ndarray, sigmas) -> np.ndarray:
    """Indices of one image's poses that OKS-NMS keeps at ``OKS_NMS_THR``; areas: the crop boxes'."""
    return oks_nms(keypoints, scores, np.prod(scales.astype(np.float64), axis=1), sigmas, OKS_NMS_THR)


def assemble_results(dataset: PoseDataset, keypoints: np.ndarray, scales: np.ndarray) -> list[dict]:
    """COCO-format results from per-instance keypoints (N, J, 3): instance score = box score x
    mean joint score above 0.2, then OKS-NMS at 0.9 per image (areas: the crop boxes').

    Single-person protocols (MPII's PCKh) score one prediction per annotated person: no NMS,
    and each result names its person in ``annotation_id``."""
    box_scores = np.array([inst.box_score for inst in dataset.instances], dtype=np.float64)
    scores = instance_scores(keypoints, box_scores)
    per_person = dataset.meta.eval_mode == "pckh"
    results = []
    by_image: dict[int, list[int]] = {}
    for i, inst in enumerate(dataset.instances):
        by_image.setdefault(inst.image_id, []).append(i)
    for image_id, members in by_image.items():
        group = np.array(members)
        keep = group if per_person else group[pose_nms(keypoints[group], scores[group], scales[group],
                                                        dataset.meta.sigmas)]
        for i in keep:
            result = {"image_id": image_id, "category_id": 1, "keypoints": keypoints[i].reshape(-1).tolist(),
                      "score": float(scores[i])}
            if dataset.instances[i].ann_id is not None:
                result["annotation_id"] = dataset.instances[i].ann_id
            results.append(result)
    return results


def predict(dataset: PoseDataset, infer: Infer, input_size: tuple[int, int], batch_size: int = 32,
            flip_test: bool = True, progress: bool = True) -> list[dict]:
    """COCO-format keypoint results (``image_id, category_id, keypoints, score``) of ``dataset``.

    ``infer(images float32 (B, 3, H, W)) -> heatmaps (B, J, H/4, W/4)`` is the network; with
    ``flip_test`` it is called a second time on the mirrored batch.
    """
    meta = dataset.meta
    input_size = (int(input_size[0]), int(input_size[1]))
    keypoints = np.zeros((len(dataset), meta.num_joints, 3), dtype=np.float32)
    scales = np.zeros((len(dataset), 2), dtype=np.float32)
    flip_index = meta.flip_index if flip_test else None
    with progress_bar(total=len(dataset), desc=f"predict {meta.name}", unit="person", disable=not progress) as bar:
        for batch in iter_batches(dataset, input_size, batch_size):
            heatmaps = infer_heatmaps(infer, batch.images, meta.num_joints, flip_index)
            keypoints[batch.indices] = decode_heatmaps(heatmaps, batch.centers, batch.scales, input_size)
            scales[batch.indices] = batch.scales
            bar.update(len(batch.indices))
    return assemble_results(dataset, keypoints, scales)
