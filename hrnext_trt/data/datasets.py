"""Person instances of CrowdPose, COCO and OCHuman, read from each dataset's own layout.

Layouts (as the datasets' download instructions give them)::

    crowdpose/annotations/mmpose_crowdpose_{train,val,trainval,test}.json
    crowdpose/annotations/det_for_crowd_test_0.1_0.5.json        (YOLOv3 boxes, test)
    crowdpose/images/*.jpg
    coco/annotations/person_keypoints_{train,val}2017.json
    coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
    coco/{train,val}2017/*.jpg
    ochuman/annotations/ochuman_coco_format_{val,test}_range_0.00_1.00.json
    ochuman/images/*.jpg
    mpii/annotations/mpii_{train,val}.json                      (`hrnext-trt convert mpii`)
    mpii/images/*.jpg
    posetrack18/annotations/posetrack18_{train,val}.json        (`hrnext-trt convert posetrack`)
    posetrack18/dets/human_detection.json                       (detector boxes, val)
    posetrack18/images/{train,val}/<video>/*.jpg                (file_name is relative to the root)

Instances come from ground-truth boxes (training, and OCHuman's test protocol) or from a
detector's boxes above a score threshold (the CrowdPose and COCO test protocol), selected the
way mmpose 0.x (the HRNeXt code base) selects them. MPII is single-person: one instance per
annotated person, cropped from its annotated center and scale with HRNet's adjustment (center y
+ 15 px x scale, scale x 1.25), never from a box. PoseTrack keeps the labelled frames only (the
ones its benchmark scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrnext_trt.data.coco_format import check_annotation_file, check_categories, check_detection
from hrnext_trt.data.files import read_json
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta, get_meta

# Which boxes the paper's test protocol uses (mmpose configs of HRNeXt): OCHuman has no detector
# file and is tested on ground-truth boxes.
# MPII's "gt" is its annotated center/scale per person (the single-person protocol).
PROTOCOL_BOXES = {"crowdpose": "det", "coco": "det", "ochuman": "gt", "mpii": "gt", "posetrack": "det"}
# The split each dataset's accuracy is published on.
TEST_SPLIT = {"crowdpose": "test", "coco": "val", "ochuman": "test", "mpii": "val", "posetrack": "val"}
# Detector boxes below this score are not tested (mmpose 0.x's det_bbox_thr: 0.4 for PoseTrack18).
DET_SCORE_THR = {"posetrack": 0.4}
# MPII's person scale is the person's height / 200 px; HRNet moves the center down by 15 px x
# scale and pads the crop by 1.25 (BOX_PADDING of the crop code) "to avoid cropping limbs".
MPII_PIXEL_STD = 200.0
MPII_CENTER_SHIFT = 15.0


@dataclass(frozen=True)
class _Layout:
    ann: str  # annotation file, relative to the root, with {split}
    images: str  # image folder, relative to the root, with {split}
    det: str | None  # default detector file, relative to the root
    splits: tuple[str, ...]


_LAYOUTS = {
    "crowdpose": _Layout("annotations/mmpose_crowdpose_{split}.json", "images",
                         "annotations/det_for_crowd_test_0.1_0.5.json", ("train", "val", "trainval", "test")),
    "coco": _Layout("annotations/person_keypoints_{split}2017.json", "{split}2017",
                    "person_detection_results/COCO_val2017_detections_AP_H_56_person.json", ("train", "val")),
    "ochuman": _Layout("annotations/ochuman_coco_format_{split}_range_0.00_1.00.json", "images", None,
                       ("val", "test")),
    "mpii": _Layout("annotations/mpii_{split}.json", "images", None, ("train", "val", "trainval")),
    "posetrack": _Layout("annotations/posetrack18_{split}.json", ".", "dets/human_detection.json", ("train", "val")),
}
# The release files `hrnext-trt convert` makes a split's annotation file from (HRNet's MPII JSON,
# PoseTrack 2018's per-video folder), relative to the root: named when the converted file is missing.
_RELEASE_SOURCES = {
    "mpii": {"train": "annot/train.json", "val": "annot/valid.json", "trainval": "annot/trainval.json"},
    "posetrack": {"train": "annotations/train", "val": "annotations/val"},
}


@dataclass(frozen=True)
class ImageInfo:
    id: int
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class Instance:
    """One person to crop: a box in an image, with its ground-truth keypoints when known."""

    image_id: int
    image_path: Path
    box: np.ndarray  # (4,) float32 x, y, w, h in image pixels
    box_score: float  # 1.0 for ground-truth boxes
    keypoints: np.ndarray | None  # (J, 3) float32 x, y, v (COCO visibility 0/1/2); None for detector boxes
    ann_id: int | None = None  # the annotation a prediction is scored against (MPII's per-person protocol)


@dataclass
class PoseDataset:
    name: str  # a name of hrnext_trt.keypoints.DATASETS
    split: str
    boxes: str  # "gt" or "det"
    meta: KeypointMeta
    ann_file: Path
    image_dir: Path
    images: dict[int, ImageInfo]  # image id -> info, in annotation-file order
    instances: list[Instance]  # grouped by image, in annotation-file order

    def __len__(self) -> int:
        return len(self.instances)

    def check_image(self, image_id: int, image: np.ndarray) -> np.ndarray:
        """``image`` as decoded, refused where its size is not the one the annotation file records for
        it: every box and keypoint would land on other pixels (a resized or rotated copy of the image)."""
        info = self.images.get(image_id)
        height, width = image.shape[:2]
        if info is not None and (width, height) != (info.width, info.height):
            raise HrnextError(f"image {info.path} is {width}x{height} but {self.ann_file.name} records "
                              f"{info.width}x{info.height} for it: its boxes and keypoints would land on other pixels; "
                              "use the images the annotations were made for (not a resized or rotated copy)")
        return image


def load_dataset(name: str, root: str | Path, split: str, boxes: str = "gt", det_file: str | Path | None = None,
                 det_score_thr: float | None = None) -> PoseDataset:
    """Load ``split`` of dataset ``name`` under ``root`` with person boxes from ``boxes``.

    ``boxes="gt"``: annotated people, skipping crowd regions, people without labelled
    keypoints and degenerate boxes (as mmpose does). ``boxes="det"``: the detector's person
    boxes with score >= ``det_score_thr`` (default: the protocol's, ``DET_SCORE_THR``, else 0;
    ``det_file`` defaults to the layout's file); boxes of
    images outside the split and zero-area boxes are ignored, and an image without boxes simply
    has no instances.
    """
    meta = get_meta(name)
    layout = _LAYOUTS[name]
    if split not in layout.splits:
        # OCHuman is a test set: its models train on COCO (train/hrnext_s_ochuman_*.yaml).
        untrained = "" if any("train" in s for s in layout.splits) else \
            f" ({name} has no training split: its configs train on COCO and test on {name})"
        raise HrnextError(f"unknown {name} split {split!r}: choose one of {', '.join(layout.splits)}{untrained}")
    if boxes not in ("gt", "det"):
        raise HrnextError(f"boxes must be 'gt' or 'det', got {boxes!r}")
    root = Path(root)
    if not root.is_dir():
        raise HrnextError(f"{name} dataset root not found: {root}")
    ann_file = root / layout.ann.format(split=split)
    image_dir = root / layout.images.format(split=split)
    if not image_dir.is_dir():
        raise HrnextError(f"{name} image folder not found: {image_dir} (expected the dataset's own layout)")
    if not ann_file.exists():
        hint = _missing_annotation_hint(name, root, split)
        raise HrnextError(f"{name} annotation file not found: {ann_file} ({hint})")
    data = read_json(ann_file, f"{name} annotation file")
    images, annotations = _parse_annotations(data, ann_file, meta, image_dir)
    if meta.eval_mode in ("coco", "crowdpose"):  # scored by the COCO tools: refused here, not after a whole run
        check_categories(data, ann_file)
    labelled = {int(im["id"]): bool(im.get("is_labeled", True)) for im in data["images"]}

    if name == "posetrack":
        images = {i: info for i, info in images.items() if labelled[i]}
    if boxes == "gt":
        gt_instances = _mpii_instances if name == "mpii" else _gt_instances
        instances = gt_instances(images, annotations, meta)
        if not instances and any(annotations.values()):
            raise HrnextError(f"annotation file {ann_file}: none of its people has labelled keypoints and a box of "
                              "positive size inside its image, so there is nothing to crop: check the file")
    else:
        if det_file is None:
            if layout.det is None:
                raise HrnextError(f"{name} has no detector file in its protocol (it is tested on ground-truth "
                                  "boxes): use ground-truth boxes (--boxes gt) or pass a detections file "
                                  "(--det-file)")
            det_file = root / layout.det
        people = [ann for anns in annotations.values() for ann in anns if not ann.get("iscrowd", 0)]
        if people and not any(max(ann.get("keypoints") or [0]) > 0 for ann in people):
            # Every score would be NaN (PCKh, poseval) or -1 (the COCO tools) after the whole run.
            raise HrnextError(f"annotation file {ann_file}: none of its {len(people)} people has a labelled joint, so "
                              "detector boxes would have nothing to be scored against: check the file")
        thr = DET_SCORE_THR.get(name, 0.0) if det_score_thr is None else det_score_thr
        instances = _det_instances(images, Path(det_file), thr)
    return PoseDataset(name=name, split=split, boxes=boxes, meta=meta, ann_file=ann_file, image_dir=image_dir,
                       images=images, instances=instances)


def _missing_annotation_hint(name: str, root: Path, split: str) -> str:
    """How to get past a missing annotation file: convert the release file, or pick a split the root has."""
    layout = _LAYOUTS[name]
    source = _RELEASE_SOURCES.get(name, {}).get(split)
    if source is not None and (root / source).exists():
        return (f"make it from the release file: hrnext-trt convert {name} {root / source} "
                f"--out {root / layout.ann.format(split=split)}")
    others = [s for s in layout.splits if s != split and (root / layout.ann.format(split=s)).is_file()]
    named = [f"{s} (where {name}'s accuracy is published: train on it only to try the tool)"
             if s == TEST_SPLIT.get(name) else s for s in others]
    hints = [f"this root has the {' and '.join(named)} split: pass it as the split (--split, --calib-split, "
             "data.train.split or data.val.split)"] if others else []
    if source is not None:
        hints.append(f"make it from the release files with `hrnext-trt convert {name}`")
    return "; ".join(hints) or f"expected the dataset's own layout, with a {split} split"


def _parse_annotations(data, ann_file: Path, meta: KeypointMeta,
                       image_dir: Path) -> tuple[dict[int, ImageInfo], dict[int, list[dict]]]:
    # Keypoints may be absent or empty (people without labels are skipped), never malformed.
    check_annotation_file(data, ann_file, meta.num_joints, meta.name, image_fields=("file_name", "width", "height"),
                          annotation_fields=("bbox",), unlabelled_need_fields=False)
    images = {int(im["id"]): ImageInfo(int(im["id"]), image_dir / im["file_name"], int(im["width"]),
                                       int(im["height"])) for im in data["images"]}
    by_image: dict[int, list[dict]] = {i: [] for i in images}
    for ann in data["annotations"]:
        by_image[int(ann["image_id"])].append(ann)
    return images, by_image


def _gt_instances(images: dict[int, ImageInfo], annotations: dict[int, list[dict]],
                  meta: KeypointMeta) -> list[Instance]:
    instances = []
    for image_id, info in images.items():
        for ann in annotations[image_id]:
            if ann.get("iscrowd", 0) or not ann.get("keypoints"):
                continue
            keypoints = np.asarray(ann["keypoints"], dtype=np.float32).reshape(meta.num_joints, 3)
            if keypoints.max() <= 0 or ann.get("num_keypoints", 1) == 0:
                continue
            box = _clean_box(ann["bbox"], info.width, info.height)
            if box is None or ann.get("area", 1) <= 0:
                continue
            instances.append(Instance(image_id, info.path, box, 1.0, keypoints))
    return instances


def _mpii_instances(images: dict[int, ImageInfo], annotations: dict[int, list[dict]],
                    meta: KeypointMeta) -> list[Instance]:
    """One instance per annotated person, its crop box from the annotated center and scale.

    The box is the square of side 200 px x scale about the shifted center: the crop code pads it
    by 1.25 and fits it to the input's aspect, so a square input crops exactly HRNet's region
    (width 200 x scale x 1.25 px), unclipped, as HRNet does.
    """
    instances = []
    for image_id, info in images.items():
        for ann in annotations[image_id]:
            if "center" not in ann or "scale" not in ann:
                raise HrnextError(f"MPII annotation {ann.get('id')} has no center/scale: convert the dataset with "
                                  "`hrnext-trt convert mpii`")
            scale = float(ann["scale"])
            cx, cy = (float(v) for v in ann["center"])
            cy += MPII_CENTER_SHIFT * scale
            side = MPII_PIXEL_STD * scale
            box = np.array([cx - side / 2, cy - side / 2, side, side], dtype=np.float32)
            keypoints = np.asarray(ann["keypoints"], dtype=np.float32).reshape(meta.num_joints, 3)
            instances.append(Instance(image_id, info.path, box, 1.0, keypoints, int(ann["id"])))
    return instances


def _clean_box(box, width: int, height: int) -> np.ndarray | None:
    # mmpose 0.x clips the box to the image with its "w - 1" pixel convention; kept so crops
    # (and so accuracy) match the code the paper's numbers come from.
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)


def _det_instances(images: dict[int, ImageInfo], det_file: Path, score_thr: float) -> list[Instance]:
    dets = read_json(det_file, "detector file")
    if not isinstance(dets, list):
        raise HrnextError(f"detector file {det_file} must hold a list of {{image_id, bbox, score}} objects")
    per_image: dict[int, list[Instance]] = {i: [] for i in images}
    in_split = empty = 0
    for index, det in enumerate(dets):
        checked = check_detection(det, f"detector file {det_file}", index)
        if checked is None or checked[0] not in per_image:
            continue
        image_id, box, score = checked
        in_split += 1
        # A zero-area box has no crop (and no inverse transform): it cannot hold a person.
        if box[2] <= 0 or box[3] <= 0:
            empty += 1
        elif score >= score_thr:
            per_image[image_id].append(Instance(image_id, images[image_id].path, box, score, None))
    if dets and not in_split:
        raise HrnextError(f"detector file {det_file} has no boxes for any image of this split: is it another "
                          "dataset's or split's file? A split without detections is scored on ground-truth boxes "
                          "(`--boxes gt`; in a training config `data.val.boxes: gt`)")
    if in_split and empty == in_split:
        raise HrnextError(f"detector file {det_file}: all {empty} boxes of this split have zero width or height, "
                          "so no person can be cropped: check the tool that wrote the boxes (x, y, width, height)")
    instances = [inst for group in per_image.values() for inst in group]
    if in_split and not instances:
        raise HrnextError(f"detector file {det_file}: none of the {in_split} boxes of this split scores >= "
                          f"{score_thr:g}: lower the detector score threshold")
    return instances
