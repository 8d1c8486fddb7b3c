"""MPII Human Pose -> a COCO-format keypoint file, from either of its two common formats.

- The original release ``.mat`` (``mpii_human_pose_v1_u12_1.mat``): the ``RELEASE`` struct,
  ``annolist(i).image.name`` and ``annolist(i).annorect(r)`` with the head box ``x1, y1, x2, y2``,
  ``objpos``, ``scale`` and ``annopoints.point`` (``id`` 0-15 in the joint order of
  ``keypoints.MPII``, ``x``, ``y``, ``is_visible``). Every annotated person of the training
  images (``img_train == 1``) is converted; the release's test images carry no joints.
- HRNet's JSON (``annot/{train,valid}.json``: ``image``, ``center``, ``scale``, ``joints``,
  ``joints_vis``) with, when it lies beside the JSON, ``gt_<name>.mat`` (``headboxes_src``,
  ``jnt_missing``, ``pos_gt_src`` in the same person order): the standard (Tompson) split.

Coordinates: MPII is 1-based (MATLAB); the converted file is 0-based like COCO and like every
prediction of this toolkit: every x, y (joints, ``center``, ``head_box``) is the release's value
minus 1, as HRNet's MPII loader does. Visibility, COCO style: 0 = not annotated (x = y = 0),
1 = annotated but marked occluded (release ``is_visible`` 0), 2 = annotated and visible or of
unknown visibility (the release leaves it empty on head points; HRNet's JSON does not record it).
Each person keeps ``center`` and ``scale`` (person height / 200 px) as annotated: the HRNet
adjustment (center y + 15 px x scale, scale x 1.25) is the dataset loader's protocol, not data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hrnext_trt.converters.common import category, find_root, image_size, keypoint_box
from hrnext_trt.data.files import read_json
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import MPII

logger = logging.getLogger(__name__)

J = MPII.num_joints


def convert_mpii(src: str | Path, image_root: str | Path | None = None, head_boxes: str | Path | None = None) -> dict:
    """The COCO-format dict of an MPII release ``.mat`` or HRNet-style ``.json`` at ``src``.

    ``image_root``: the folder holding ``images/`` (default: found at or above ``src``); image
    sizes are read from the files. ``head_boxes``: HRNet's ``gt_*.mat`` for a JSON source
    (default: ``gt_<stem>.mat`` beside it, when present).
    """
    src = Path(src)
    if not src.is_file():
        raise HrnextError(f"MPII source not found: {src} (give the release .mat or HRNet's annot/*.json)")
    if src.suffix == ".mat":
        people = _people_from_release(src)
        logger.warning("%s: every annotated person of the release's training images, the standard train and "
                       "validation people together; to score on the standard validation split convert HRNet's "
                       "annot/valid.json", src.name)
    elif src.suffix == ".json":
        people = _people_from_hrnet_json(src, head_boxes)
    else:
        raise HrnextError(f"MPII source {src} must be the release .mat or HRNet's .json")
    if not people:
        raise HrnextError(f"{src} holds no annotated person")
    root = Path(image_root) if image_root is not None else find_root(src, f"images/{people[0]['image']}",
                                                                    "holding MPII's images/")
    images: dict[str, dict] = {}
    annotations = []
    for person in people:
        name = person["image"]
        if name not in images:
            width, height = image_size(root / "images" / name)
            images[name] = {"id": len(images) + 1, "file_name": name, "width": width, "height": height}
        keypoints = person["keypoints"]
        box = keypoint_box(keypoints)
        ann = {"id": len(annotations) + 1, "image_id": images[name]["id"], "category_id": 1, "iscrowd": 0,
               "keypoints": keypoints, "num_keypoints": sum(1 for v in keypoints[2::3] if v > 0),
               "bbox": box, "area": box[2] * box[3], "center": person["center"], "scale": person["scale"]}
        if person.get("head_box") is not None:
            ann["head_box"] = person["head_box"]
        annotations.append(ann)
    logger.info("MPII %s: %d people in %d images", src.name, len(annotations), len(images))
    return {"info": {"description": f"MPII Human Pose from {src.name}, converted by hrnext-trt",
                     "coordinates": "0-based pixels (MPII's 1-based values minus 1)"},
            "images": list(images.values()), "annotations": annotations, "categories": [category(MPII)]}


def _person(image: str, center, scale: float, joints: np.ndarray, vis: np.ndarray, head_box) -> dict:
    """One converted person from 1-based ``joints`` (J, 2), COCO visibility ``vis`` (J,), head box x1 y1 x2 y2."""
    keypoints = []
    for (x, y), v in zip(joints, vis):
        keypoints += [float(x) - 1, float(y) - 1, int(v)] if v > 0 else [0.0, 0.0, 0]
    return {"image": image, "center": [float(center[0]) - 1, float(center[1]) - 1], "scale": float(scale),
            "keypoints": keypoints,
            "head_box": None if head_box is None else [float(c) - 1 for c in head_box]}


# --- the release .mat ---------------------------------------------------------------------------

def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise HrnextError(f"cannot read MATLAB file {path}: {exc}") from None


def _items(value) -> list:
    """A MATLAB struct array squeezed by scipy (one struct, an array of them, or empty) as a list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _scalar(value):
    """A number from a squeezed MATLAB field, or None when it is empty."""
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else None
    if isinstance(value, str):
        return int(value) if value.strip().isdigit() else None
    return value


def _people_from_release(path: Path) -> list[dict]:
    mat = _loadmat(path)
    if "RELEASE" not in mat:
        raise HrnextError(f"{path} has no RELEASE struct: is it MPII's mpii_human_pose_v1_u12_1.mat?")
    release = mat["RELEASE"]
    annolist = _items(release.annolist)
    train = np.atleast_1d(getattr(release, "img_train", np.ones(len(annolist))))
    people = []
    for index, entry in enumerate(annolist):
        if not int(train[index]):
            continue  # a test image: no joints published
        name = str(entry.image.name)
        for rect in _items(getattr(entry, "annorect", None)):
            fields = getattr(rect, "_fieldnames", [])
            points = _items(getattr(rect.annopoints, "point", None)) if "annopoints" in fields else []
            if not points or "objpos" not in fields or _scalar(rect.scale) is None:
                continue  # a person without joints, or without the center/scale every crop needs
            joints = np.zeros((J, 2))
            vis = np.zeros(J, dtype=int)
            for point in points:
                joint = int(_scalar(point.id))
                visible = _scalar(getattr(point, "is_visible", None))
                joints[joint] = (float(point.x), float(point.y))
                vis[joint] = 1 if visible is not None and int(visible) == 0 else 2
            head = [_scalar(getattr(rect, k, None)) for k in ("x1", "y1", "x2", "y2")]
            people.append(_person(name, (float(rect.objpos.x), float(rect.objpos.y)), float(rect.scale), joints,
                                  vis, None if None in head else head))
    return people


# --- HRNet's JSON (+ gt_*.mat) ------------------------------------------------------------------

def head_boxes_file(src: str | Path, head_boxes: str | Path | None = None) -> Path:
    """The gt_*.mat a JSON source is read with: ``head_boxes``, else ``gt_<stem>.mat`` beside it (if present)."""
    return Path(head_boxes) if head_boxes is not None else Path(src).with_name(f"gt_{Path(src).stem}.mat")


def _people_from_hrnet_json(path: Path, head_boxes: str | Path | None) -> list[dict]:
    records = read_json(path, "MPII annotation file")
    if not isinstance(records, list) or not all(isinstance(r, dict) and {"image", "center", "scale"} <= r.keys()
                                                for r in records):
        raise HrnextError(f"{path} is not HRNet's MPII JSON (a list of {{image, center, scale, joints, joints_vis}})")
    gt_path = head_boxes_file(path, head_boxes)
    boxes = None
    if gt_path.is_file():
        gt = _loadmat(gt_path)
        boxes = np.asarray(gt.get("headboxes_src"), dtype=np.float64)  # (2, 2, N): [[x1, y1], [x2, y2]]
        if boxes.ndim != 3 or boxes.shape[:2] != (2, 2) or boxes.shape[2] != len(records):
            raise HrnextError(f"{gt_path} has head boxes for {boxes.shape[-1] if boxes.ndim else 0} people but "
                              f"{path} has {len(records)}: pass the gt_*.mat of the same split")
        missing = np.asarray(gt["jnt_missing"])  # (J, N), 1 = not annotated
        listed = np.array([[1 - int(v) for v in r["joints_vis"]] for r in records]).T
        if missing.shape != listed.shape or (missing != listed).any():
            raise HrnextError(f"{gt_path} and {path} disagree on which joints are annotated: pass the gt_*.mat of "
                              "the same split")
    elif head_boxes is not None:
        raise HrnextError(f"head box file not found: {gt_path}")
    else:
        logger.warning("no %s beside %s: converted without head boxes (enough for training, not for PCKh)",
                       gt_path.name, path.name)
    people = []
    for i, record in enumerate(records):
        joints = np.asarray(record.get("joints", np.zeros((J, 2))), dtype=np.float64)
        vis = np.asarray(record.get("joints_vis", np.zeros(J)), dtype=int) * 2  # annotated -> 2
        if joints.shape != (J, 2) or vis.shape != (J,):
            raise HrnextError(f"{path}: person {i} ({record['image']}) does not have {J} joints")
        head = None if boxes is None else boxes[:, :, i].reshape(-1)  # x1, y1, x2, y2
        people.append(_person(str(record["image"]), record["center"], float(record["scale"]), joints, vis, head))
    return people
