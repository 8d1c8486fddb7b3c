"""Pictures of poses: predicted or ground-truth skeletons drawn on the dataset's images.

Left limbs are orange, right limbs blue and the middle (head, trunk) green, so a swapped
left/right is visible at a glance. A run owns its folder: ``visualize.json`` lists what it drew
(dataset, split, ground truth or which results, the files), and a folder holding anything is
refused unless ``overwrite``, which replaces the listed pictures of the previous run.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.contract import check_fraction
from hrnext_trt.data.datasets import load_dataset
from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation.metrics import read_results
from hrnext_trt.keypoints import KeypointMeta
from hrnext_trt.progress import progress_bar
from hrnext_trt.reports import claim_output_folder, write_atomic

log = logging.getLogger(__name__)

LISTING_NAME = "visualize.json"
_SIDE_COLORS_BGR = {"left": (0, 140, 255), "right": (255, 128, 0), "middle": (60, 200, 60)}


@dataclass(frozen=True)
class VisualizeConfig:
    dataset: str
    data_root: Path
    split: str
    out_dir: Path
    results: Path | list[dict] | None = None  # None: draw the ground truth
    score_thr: float = 0.3  # people below this instance score are not drawn
    kpt_thr: float = 0.3  # joints below this score are not drawn
    max_images: int | None = None  # None: every image
    image_format: str = "png"  # "png" or "jpg"
    overwrite: bool = False  # replace a previous visualize run's pictures in out_dir


def _side(name: str) -> str:
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "middle"


def draw_poses(image_bgr: np.ndarray, poses: np.ndarray, meta: KeypointMeta, kpt_thr: float = 0.3,
               scores: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``image_bgr`` with poses (N, J, 3: x, y, score or visibility) drawn on it."""
    canvas = image_bgr.copy()
    size = max(canvas.shape[:2])
    thickness = max(2, round(size / 300))
    radius = thickness + 1
    sides = [_side(n) for n in meta.keypoint_names]
    for p, pose in enumerate(np.asarray(poses, dtype=np.float64)):
        shown = pose[:, 2] > kpt_thr
        for a, b in meta.skeleton:
            if shown[a] and shown[b]:
                side = sides[a] if sides[a] == sides[b] else "middle"
                cv2.line(canvas, _pt(pose[a]), _pt(pose[b]), _SIDE_COLORS_BGR[side], thickness, cv2.LINE_AA)
        for j in np.flatnonzero(shown):
            cv2.circle(canvas, _pt(pose[j]), radius, _SIDE_COLORS_BGR[sides[j]], -1, cv2.LINE_AA)
            cv2.circle(canvas, _pt(pose[j]), radius, (255, 255, 255), 1, cv2.LINE_AA)
        if scores is not None and shown.any():
            x, y = pose[shown, 0].min(), pose[shown, 1].min()
            cv2.putText(canvas, f"{scores[p]:.2f}", (int(x), max(int(y) - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                        size / 1600 + 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _pt(joint: np.ndarray) -> tuple[int, int]:
    return int(round(joint[0])), int(round(joint[1]))


def picture_names(paths: list[Path], image_format: str) -> list[str]:
    """One file name per image: its stem, or, where stems repeat (PoseTrack's every video starts at
    000000.jpg), its path below the images' common folder with '_' for '/'."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return [f"{stem}.{image_format}" for stem in stems]
    common = Path(os.path.commonpath([p.parent for p in paths]))
    return ["_".join(p.relative_to(common).with_suffix("").parts) + f".{image_format}" for p in paths]


def visualize(config: VisualizeConfig) -> list[Path]:
    """Draw every image's poses (predicted when ``config.results`` is given, else ground truth)
    into ``config.out_dir``; returns the files written."""
    if config.image_format not in ("png", "jpg"):
        raise HrnextError(f"image format must be png or jpg, got {config.image_format!r}")
    # None draws every image; a count below 1 would be a Python slice (-1: all but the last).
    if config.max_images is not None and config.max_images < 1:
        raise HrnextError(f"max_images (--max-images) must be >= 1, got {config.max_images}: leave it out to draw "
                          "every image")
    for name in ("score_thr", "kpt_thr"):  # scores are 0..1 (a NaN or 2 would draw nothing and say nothing)
        check_fraction(f"{name} (--{name.replace('_', '-')})", getattr(config, name))
    dataset = load_dataset(config.dataset, config.data_root, config.split, boxes="gt")
    meta = dataset.meta
    poses: dict[int, list[np.ndarray]] = defaultdict(list)
    scores: dict[int, list[float]] = defaultdict(list)
    if config.results is None:
        for inst in dataset.instances:
            # Visibility 1 (labelled, occluded) and 2 both count as shown.
            poses[inst.image_id].append(np.concatenate([inst.keypoints[:, :2], inst.keypoints[:, 2:] > 0], axis=1))
        kpt_thr = 0.5
    else:
        predicted = read_results(config.results, meta, set(dataset.images))
        for res in predicted:
            if res["score"] >= config.score_thr:
                poses[res["image_id"]].append(np.asarray(res["keypoints"], dtype=np.float64).reshape(-1, 3))
                scores[res["image_id"]].append(float(res["score"]))
        kpt_thr = config.kpt_thr
        _warn_if_nothing_shows(predicted, poses, config.score_thr, kpt_thr)

    out_dir = Path(config.out_dir)
    image_ids = list(dataset.images)[:config.max_images]
    # Before any write: drawings must neither replace the dataset's photos nor mix with them.
    if out_dir.is_dir() and any(dataset.images[i].path.parent.resolve() == out_dir.resolve() for i in image_ids):
        raise HrnextError(f"--out {out_dir} is the folder of the dataset's images: the drawings would replace or "
                          "mix with them; choose another folder")
    names = picture_names([dataset.images[i].path for i in image_ids], config.image_format)
    with claim_output_folder(out_dir, LISTING_NAME, config.overwrite, "visualize"):
        return _draw(config, dataset, image_ids, names, poses, scores, kpt_thr, out_dir)


def _draw(config: VisualizeConfig, dataset, image_ids: list[int], names: list[str], poses: dict, scores: dict,
          kpt_thr: float, out_dir: Path) -> list[Path]:
    """The pictures, into the claimed ``out_dir``, listed before the first is drawn."""
    meta = dataset.meta
    # Listed before drawing: a later --overwrite removes also the pictures of a run that stopped half-way.
    results = config.results if config.results is None or isinstance(config.results, (str, Path)) else "(in memory)"
    write_atomic(out_dir / LISTING_NAME, (json.dumps({
        "dataset": config.dataset, "data_root": str(config.data_root), "split": config.split,
        "drawn": "ground truth" if config.results is None else f"results {results}", "files": names}, indent=1)
        + "\n").encode("utf-8"))
    written = []
    for image_id, name in zip(progress_bar(image_ids, desc="visualize", unit="image"), names):
        info = dataset.images[image_id]
        pose_array = np.array(poses[image_id]).reshape(-1, meta.num_joints, 3)
        canvas = draw_poses(read_image(info.path), pose_array, meta, kpt_thr,
                            np.array(scores[image_id]) if config.results is not None else None)
        ok, encoded = cv2.imencode(f".{config.image_format}", canvas)
        if not ok:
            raise HrnextError(f"OpenCV cannot encode {name}")
        written.append(write_atomic(out_dir / name, encoded.tobytes()))  # a full disk: the reason, in one line
    return written


def _warn_if_nothing_shows(predicted: list[dict], kept: dict[int, list[np.ndarray]], score_thr: float,
                           kpt_thr: float) -> None:
    """Say so when the thresholds leave no person or no joint to draw: pictures identical to the
    photos would otherwise pass for people not found."""
    if not predicted:
        return
    if not any(kept.values()):
        best = max(float(r["score"]) for r in predicted)
        log.warning("none of the %d predicted people scores --score-thr %g or more (the best: %.3g): the pictures "
                    "show the images without poses; lower --score-thr", len(predicted), score_thr, best)
    elif not any((pose[:, 2] > kpt_thr).any() for image in kept.values() for pose in image):
        log.warning("no joint scores above --kpt-thr %g: the pictures show the images without poses; lower "
                    "--kpt-thr", kpt_thr)
