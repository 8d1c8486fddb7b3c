"""``ModelSpec``: what a trained model is, in the one form its checkpoint, ONNX files and manifest carry.

The checkpoint stores ``to_dict()`` among its top-level keys, the exported ONNX files store it
as JSON under ``contract.METADATA_KEY`` (with their precision), and the export manifest under
``"model"``. ``from_dict`` reads any of the three; a key a file does not
record (the paper's mmpose checkpoints record none) reads as None.
"""

from __future__ import annotations

from dataclasses import dataclass

from hrnext_trt.contract import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, INPUT_NAME, OUTPUT_NAME, heatmap_size
from hrnext_trt.keypoints import DATASETS, get_meta


@dataclass(frozen=True)
class ModelSpec:
    arch: str | None = None
    num_joints: int | None = None
    input_size: tuple[int, int] | None = None  # (H, W) of the crops the model takes
    dataset: str | None = None  # whose joints the heatmaps are (hrnext_trt.keypoints)
    mean: tuple[float, ...] = IMAGENET_MEAN_RGB  # what hrnext_trt.data.preprocess normalises with, RGB
    std: tuple[float, ...] = IMAGENET_STD_RGB
    flip_pairs: tuple[tuple[int, int], ...] = ()
    # Whether its recipe scores with flip test (exports record it: a copied ONNX file scores as its
    # export does); None where nothing says.
    flip_test: bool | None = None

    @classmethod
    def of(cls, arch: str, num_joints: int, input_size, dataset: str) -> "ModelSpec":
        """The spec of a model trained on ``dataset`` (its flip pairs from the keypoint metadata)."""
        return cls(arch, int(num_joints), _size(input_size), dataset, flip_pairs=get_meta(dataset).flip_pairs)

    @property
    def heatmap_size(self) -> tuple[int, int] | None:
        return heatmap_size(self.input_size) if self.input_size else None

    def to_dict(self) -> dict:
        """Plain JSON values, with what a deployed file needs to run alone: heatmap size, colour order
        and the I/O tensor names."""
        return {"arch": self.arch, "num_joints": self.num_joints,
                "input_size": list(self.input_size) if self.input_size else None,
                "heatmap_size": list(self.heatmap_size) if self.input_size else None,
                "mean": list(self.mean), "std": list(self.std), "color": "rgb", "dataset": self.dataset,
                "flip_pairs": [list(p) for p in self.flip_pairs], "input": INPUT_NAME, "output": OUTPUT_NAME,
                **({"flip_test": self.flip_test} if self.flip_test is not None else {})}

    @classmethod
    def from_dict(cls, values: dict) -> "ModelSpec":
        dataset = values.get("dataset")
        pairs = values.get("flip_pairs")
        if pairs is None and dataset in DATASETS:
            pairs = DATASETS[dataset].flip_pairs
        return cls(arch=values.get("arch"),
                   num_joints=int(values["num_joints"]) if values.get("num_joints") else None,
                   input_size=_size(values.get("input_size")), dataset=dataset,
                   mean=tuple(values.get("mean") or IMAGENET_MEAN_RGB),
                   std=tuple(values.get("std") or IMAGENET_STD_RGB),
                   flip_pairs=tuple(tuple(int(j) for j in p) for p in pairs or ()),
                   flip_test=bool(values["flip_test"]) if values.get("flip_test") is not None else None)


def _size(size) -> tuple[int, int] | None:
    return (int(size[0]), int(size[1])) if size else None
