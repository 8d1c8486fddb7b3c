"""Keypoint metadata of each dataset, as data.

Names, mirror partners (derived from the names), skeleton, OKS sigmas, the body halves used by
half-body augmentation and the evaluation protocol are built once into frozen objects. Every
other module asks here; joint counts are never written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hrnext_trt.errors import HrnextError


@dataclass(frozen=True)
class KeypointMeta:
    name: str
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # 0-based joint index pairs, for drawing
    sigmas: tuple[float, ...]  # OKS sigmas (already divided by 10)
    upper_body: tuple[int, ...]  # joint ids of the upper half (half-body augmentation)
    eval_mode: str  # which protocol scores it: "coco", "crowdpose" (COCOeval), "pckh" (MPII), "posetrack" (poseval)
    flip_pairs: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self):
        if len(self.sigmas) != len(self.keypoint_names):
            raise ValueError(f"{self.name}: {len(self.sigmas)} sigmas for {len(self.keypoint_names)} joints")
        # Mirror partners come from the names ("left_x" <-> "right_x"), never from a hand list.
        index = {n: i for i, n in enumerate(self.keypoint_names)}
        pairs = tuple(
            (i, index["right_" + n[len("left_"):]])
            for i, n in enumerate(self.keypoint_names)
            if n.startswith("left_") and "right_" + n[len("left_"):] in index
        )
        object.__setattr__(self, "flip_pairs", pairs)

    @property
    def num_joints(self) -> int:
        return len(self.keypoint_names)

    @property
    def lower_body(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_joints) if i not in self.upper_body)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """``flip_index[j]`` is the joint that ``j`` becomes in a mirrored image."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    def to_dict(self) -> dict:
        """Plain-JSON form, embedded in checkpoints, ONNX metadata and engine manifests."""
        return {
            "name": self.name,
            "keypoint_names": list(self.keypoint_names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": list(self.sigmas),
            "eval_mode": self.eval_mode,
        }


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_COCO_SIGMAS = tuple(s / 10 for s in (
    .26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89))
_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

COCO = KeypointMeta(
    name="coco",
    keypoint_names=_COCO_NAMES,
    skeleton=_COCO_SKELETON,
    sigmas=_COCO_SIGMAS,
    upper_body=tuple(range(11)),
    eval_mode="coco",
)

# OCHuman is annotated with COCO's 17 joints and scored with COCO's protocol (as mmpose does).
OCHUMAN = KeypointMeta(
    name="ochuman",
    keypoint_names=_COCO_NAMES,
    skeleton=_COCO_SKELETON,
    sigmas=_COCO_SIGMAS,
    upper_body=tuple(range(11)),
    eval_mode="coco",
)

CROWDPOSE = KeypointMeta(
    name="crowdpose",
    keypoint_names=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "head", "neck",
    ),
    skeleton=(
        (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7),
        (6, 8), (8, 10), (7, 9), (9, 11),
    ),
    sigmas=tuple(s / 10 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79)),
    upper_body=(0, 1, 2, 3, 4, 5, 12, 13),
    eval_mode="crowdpose",
)

# MPII Human Pose in its release's joint order (the MPII toolkit's, HRNet's): single-person,
# scored by PCKh. It has no OKS; mmpose's sigmas (adapted from COCO) serve OKS-NMS only.
MPII = KeypointMeta(
    name="mpii",
    keypoint_names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist",
    ),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (8, 12), (12, 11), (11, 10),
        (8, 13), (13, 14), (14, 15),
    ),
    sigmas=(.089, .083, .107, .107, .083, .089, .026, .026, .026, .026, .062, .072, .179, .179, .072, .062),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),  # HRNet's MPII upper_body_ids
    eval_mode="pckh",
)

# PoseTrack 2018: COCO's 17 slots, with head_bottom and head_top where COCO has the eyes; the
# ears are never annotated (poseval scores the other 15 joints). Sigmas as COCO's (mmpose).
POSETRACK = KeypointMeta(
    name="posetrack",
    keypoint_names=("nose", "head_bottom", "head_top") + _COCO_NAMES[3:],
    skeleton=_COCO_SKELETON,
    sigmas=_COCO_SIGMAS,
    upper_body=tuple(range(11)),
    eval_mode="posetrack",
)

DATASETS: dict[str, KeypointMeta] = {m.name: m for m in (COCO, CROWDPOSE, OCHUMAN, MPII, POSETRACK)}


def get_meta(dataset: str) -> KeypointMeta:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise HrnextError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}") from None


def model_meta(dataset: str | None, num_joints: int | None) -> KeypointMeta:
    """The keypoints a model predicts: its dataset's where the model records one, else its joint count's."""
    return get_meta(dataset) if dataset else meta_for_joints(num_joints)


def meta_for_joints(num_joints: int) -> KeypointMeta:
    """The default metadata for a joint count (17 -> COCO, 14 -> CrowdPose, 16 -> MPII)."""
    for meta in (COCO, CROWDPOSE, MPII):
        if meta.num_joints == num_joints:
            return meta
    raise HrnextError(f"no dataset has {num_joints} joints: use 17 (COCO, OCHuman, PoseTrack), 14 (CrowdPose) or 16 "
                       "(MPII)")
