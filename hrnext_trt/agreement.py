"""What each backend and precision costs on one's own pictures, without labels: agreement with a reference.

AP needs annotations; the question a deployment asks of FP16 and INT8 ("does it still find the
same poses on *my* camera?") does not. Every backend runs the same crops of the same people
(found as ``predict`` finds them, ``predict.pictures``) through the shared decode, and each
person's pose is compared with the reference backend's pose of that person (PyTorch FP32 where
it runs):

- ``OKS``: object keypoint similarity of the two poses, as OKS-NMS computes it (the crop box's
  area, the model's keypoint sigmas), mean over people (1: the same pose);
- ``agree``: share of people whose pose OKS-NMS would take for the reference's (OKS above
  ``OKS_NMS_THR``, 0.9);
- ``kpt_px``: mean joint distance in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, normalize_crops, warp_crops
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation.nms import oks_pairs
from hrnext_trt.pipeline import OKS_NMS_THR, decode_heatmaps, infer_heatmaps
from hrnext_trt.predict.pictures import PeopleFinder, open_pictures
from hrnext_trt.progress import progress_bar


@dataclass
class OwnPeople:
    """The people of one's pictures, cropped once for every backend."""

    crops: np.ndarray  # (N, H, W, 3) uint8 BGR crops, normalised batch by batch when run
    centers: np.ndarray  # (N, 2) crop centers in picture pixels
    scales: np.ndarray  # (N, 2) crop sizes in picture pixels
    source: dict  # root, people_from, pictures, persons and what was skipped

    def __len__(self) -> int:
        return len(self.crops)

    def latency_batch(self, batch: int) -> np.ndarray:
        """``batch`` normalised crops (the first people, repeated if there are fewer)."""
        crops = normalize_crops(self.crops[:batch])
        return np.ascontiguousarray(np.resize(crops, (batch,) + crops.shape[1:]))


def gather_people(path: str | Path, input_size: tuple[int, int], detector: Path | None = None,
                  boxes: Path | None = None) -> OwnPeople:
    """Every person in the images of folder ``path`` (or the sampled frames of video ``path``),
    cropped; people from ``boxes`` (a detections file), ``detector`` (an ONNX) or OpenCV's HOG."""
    path = Path(path)
    pictures = open_pictures(path, "the backends are compared over many people")
    finder = PeopleFinder(pictures, detector, boxes)
    input_size = (int(input_size[0]), int(input_size[1]))

    def people_of(image: np.ndarray, key, name: str):
        centers, scales = box_to_center_scale(finder(image, key, name).xywh(), input_size)
        return warp_crops(image, affine_matrix(centers, scales, 0.0, input_size), input_size), centers, scales

    found, unreadable, empty = [], [], 0
    for _, name, people in pictures.each(people_of):
        if people is None:
            unreadable.append(name)
        elif not len(people[0]):
            empty += 1
        else:
            found.append(people)
    if not found:
        raise HrnextError(f"found no person in the {len(pictures)} {pictures.unit}s of {path} ({finder.name}): pass "
                          "--detector DET.onnx or --det-file DETS.json, or other pictures")
    crops, centers, scales = (np.concatenate(parts) for parts in zip(*found))
    source = {"root": str(path), "people_from": finder.name, "unit": pictures.unit, "pictures": len(pictures),
              "pictures_with_people": len(found), "pictures_without_people": empty, "unreadable": unreadable,
              "persons": len(crops)}
    return OwnPeople(crops, centers, scales, source)


def pose_keypoints(infer, people: OwnPeople, input_size: tuple[int, int], num_joints: int, batch: int,
                   flip_index=None, progress: bool = True, desc: str = "poses") -> np.ndarray:
    """Keypoints (N, J, 3) in picture pixels of every person, through ``infer`` (crops -> heatmaps)."""
    out = np.empty((len(people), num_joints, 3), dtype=np.float32)
    with progress_bar(total=len(people), desc=desc, unit="person", disable=not progress) as bar:
        for start in range(0, len(people), batch):
            stop = min(start + batch, len(people))
            heatmaps = infer_heatmaps(infer, normalize_crops(people.crops[start:stop]), num_joints, flip_index)
            out[start:stop] = decode_heatmaps(heatmaps, people.centers[start:stop], people.scales[start:stop],
                                              input_size)
            bar.update(stop - start)
    return out


def agreement(keypoints: np.ndarray, reference: np.ndarray, scales: np.ndarray, sigmas) -> dict:
    """``OKS``, ``agree`` and ``kpt_px`` of poses (N, J, 2+) against the reference's poses of the same people."""
    oks = oks_pairs(keypoints, reference, np.prod(scales.astype(np.float64), axis=1), sigmas)
    distance = np.linalg.norm(keypoints[..., :2].astype(np.float64) - reference[..., :2], axis=-1)
    return {"OKS": float(oks.mean()), "agree": float((oks > OKS_NMS_THR).mean()), "kpt_px": float(distance.mean())}
