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

``disagreement_sheet`` draws the people a row changed most, beside the reference's poses.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.data.preprocess import affine_matrix, normalize_crops, transform_points
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation.nms import oks_pairs
from hrnext_trt.keypoints import KeypointMeta
from hrnext_trt.pipeline import OKS_NMS_THR, decode_heatmaps, fill_batch, infer_heatmaps
from hrnext_trt.predict.pictures import PeopleFinder, open_pictures
from hrnext_trt.progress import progress_bar
from hrnext_trt.visualize import draw_poses

SHEET_PEOPLE = 8  # people on a row's disagreement sheet, lowest OKS first
SHEET_COLUMNS = 4  # pairs of panels side by side
PANEL_HEIGHT = 256  # crops smaller than this are enlarged on the sheet
PANEL_GAP, PAIR_GAP = 2, 10  # pixels between a pair's two panels (white), after each pair (black)


@dataclass
class OwnPeople:
    """The people of one's pictures, cropped once for every backend."""

    crops: np.ndarray  # (N, H, W, 3) uint8 BGR crops, normalised batch by batch when run
    centers: np.ndarray  # (N, 2) crop centers in picture pixels
    scales: np.ndarray  # (N, 2) crop sizes in picture pixels
    pictures: list[str]  # (N,) the picture each person is in (file name, or "frame N")
    source: dict  # root, people_from, pictures, persons and what was skipped

    def __len__(self) -> int:
        return len(self.crops)

    def latency_batch(self, batch: int) -> np.ndarray:
        """``batch`` normalised crops (the first people, repeated if there are fewer)."""
        return fill_batch(normalize_crops(self.crops[:batch]), batch)


def gather_people(path: str | Path, input_size: tuple[int, int], detector: Path | None = None,
                  boxes: Path | None = None, det_family: str | None = None) -> OwnPeople:
    """Every person in the images of folder ``path`` (or the sampled frames of video ``path``),
    cropped; people from ``boxes`` (a detections file), ``detector`` (an ONNX) or OpenCV's HOG."""
    path = Path(path)
    pictures = open_pictures(path, "the backends are compared over many people")
    finder = PeopleFinder(pictures, detector, boxes, det_family)
    input_size = (int(input_size[0]), int(input_size[1]))

    def people_of(image: np.ndarray, key, name: str):
        crops, centers, scales = finder.crops(image, key, name, input_size)
        return crops, centers, scales, [name] * len(crops)

    found, unreadable, empty, seen = [], [], 0, 0
    for _, name, people in pictures.each(people_of):
        seen += 1  # a damaged video gives fewer frames than its header counts
        if people is None:
            unreadable.append(name)
        elif not len(people[0]):
            empty += 1
        else:
            found.append(people)
    if not found:
        raise HrnextError(f"found no person in the {seen} {pictures.unit}s of {path} ({finder.name}): pass "
                          "--detector DET.onnx or --det-file DETS.json, or other pictures")
    crops, centers, scales, names = (np.concatenate(parts) for parts in zip(*found))
    source = {"root": str(path), "people_from": finder.name, "unit": pictures.unit, "pictures": seen,
              "pictures_with_people": len(found), "pictures_without_people": empty, "unreadable": unreadable,
              "persons": len(crops)}
    return OwnPeople(crops, centers, scales, names.tolist(), source)


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


def person_oks(keypoints: np.ndarray, reference: np.ndarray, scales: np.ndarray, sigmas) -> np.ndarray:
    """OKS (N,) of each person's pose (N, J, 2+) with the reference's pose of that person, areas
    from the crop sizes ``scales`` (N, 2), as OKS-NMS takes them."""
    return oks_pairs(keypoints, reference, np.prod(scales.astype(np.float64), axis=1), sigmas)


def agreement(keypoints: np.ndarray, reference: np.ndarray, scales: np.ndarray, sigmas) -> dict:
    """``OKS``, ``agree`` and ``kpt_px`` of poses (N, J, 2+) against the reference's poses of the same people."""
    oks = person_oks(keypoints, reference, scales, sigmas)
    distance = np.linalg.norm(keypoints[..., :2].astype(np.float64) - reference[..., :2], axis=-1)
    return {"OKS": float(oks.mean()), "agree": float((oks > OKS_NMS_THR).mean()), "kpt_px": float(distance.mean())}


def disagreement_sheet(people: OwnPeople, keypoints: np.ndarray, reference: np.ndarray, meta: KeypointMeta,
                       input_size: tuple[int, int], names: tuple[str, str], count: int = SHEET_PEOPLE) -> np.ndarray:
    """One picture of the ``count`` people whose pose moved most (lowest OKS): each person's crop
    twice, the reference's pose on the left and this row's on the right, with their OKS; ``names``:
    (reference, row). Every joint is drawn, whatever its score: a low-scored joint that jumps is
    part of what the precision changed."""
    oks = person_oks(keypoints, reference, people.scales, meta.sigmas)
    worst = np.argsort(oks, kind="stable")[:count]
    zoom = max(1, -(-PANEL_HEIGHT // input_size[0]))  # small crops enlarged so that the skeletons read
    height, width = input_size[0] * zoom, input_size[1] * zoom
    pairs = []
    for i in worst:
        to_crop = affine_matrix(people.centers[i], people.scales[i], 0.0, input_size)
        crop = cv2.resize(people.crops[i], (width, height), interpolation=cv2.INTER_NEAREST)
        panels = []
        for pose in (reference[i], keypoints[i]):
            pose = np.array(pose, dtype=np.float64)
            pose[:, :2] = transform_points(pose[:, :2], to_crop) * zoom
            pose[:, 2] = 1.0
            panels.append(draw_poses(crop, pose[None], meta, kpt_thr=0.0))
        pair = np.concatenate([panels[0], np.full((height, PANEL_GAP, 3), 255, np.uint8), panels[1],
                               np.zeros((height, PAIR_GAP, 3), np.uint8)], axis=1)
        # The score first: a long file name is cut at the picture's edge, never the score.
        pairs.append(_caption(pair, f"OKS {oks[i]:.3f}  {people.pictures[i]}"))
    columns = min(SHEET_COLUMNS, len(pairs))
    blank = np.zeros_like(pairs[0])
    rows = [np.concatenate((pairs[r:r + columns] + [blank] * columns)[:columns], axis=1)
            for r in range(0, len(pairs), columns)]
    header = f"left: {names[0]}, right: {names[1]}; the {len(pairs)} people whose pose moved most"
    return _caption(np.concatenate(rows, axis=0), header, top=True)


def _caption(image: np.ndarray, text: str, top: bool = False) -> np.ndarray:
    bar = np.zeros((22, image.shape[1], 3), dtype=np.uint8)
    # OpenCV's fonts are ASCII: accents are dropped (café -> cafe), other letters become "?".
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.encode("ascii", "replace").decode("ascii")
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image] if top else [image, bar], axis=0)
