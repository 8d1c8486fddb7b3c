"""What one export makes, validated once here so the steps below never re-check user input."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.contract import OWN_IMAGES, check_export_precisions, validate_input_size
from hrnext_trt.engines.builders import TENSORRT, check_builder_name, parse_compute_capabilities
from hrnext_trt.errors import HrnextError
from hrnext_trt.export.groups import LEVELS
from hrnext_trt.keypoints import DATASETS

CALIB_METHODS = ("entropy", "max")  # what ModelOpt's ONNX INT8 quantizer calibrates with
# Every split a dataset layout has (load_dataset refuses one the dataset lacks); calibrating on the
# split trt-eval scores is allowed (the mini samples hold only that one) and warned about.
CALIB_SPLITS = ("train", "val", "trainval", "test")
CALIB_DATASETS = tuple(sorted(DATASETS)) + (OWN_IMAGES,)


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    out_dir: Path
    arch: str | None = None  # needed for the paper's mmpose checkpoints; the project's record theirs
    num_joints: int | None = None
    input_size: tuple[int, int] | None = None  # None: the checkpoint's, else 256x192
    precisions: tuple[str, ...] = ("fp32",)  # model.onnx always; "fp16", "int8" add their files
    calib_data: Path | None = None  # dataset root (images: a folder or a video); None: the bundled coco-mini sample
    calib_dataset: str = "coco"  # a dataset layout, or OWN_IMAGES
    calib_detector: Path | None = None  # OWN_IMAGES: a detector ONNX finds the people (None: OpenCV's HOG)
    calib_boxes: Path | None = None  # OWN_IMAGES: a COCO-format detections file gives them
    calib_det_family: str | None = None  # calib_detector's preprocessing; None: from its layout and name
    calib_images: int = 512
    calib_method: str = "entropy"
    calib_split: str | None = None  # None: the dataset's training split (OCHuman: val, it has no other)
    calib_study: bool = False  # quantize with a few calibration choices first and report each one's accuracy
    int8_budget: float | None = None  # px: keep the held-out keypoints this close to FP32 (greedy precision plan)
    fp16_budget: float | None = None  # px: the FP16 file's groups that drift past it stay FP32
    sensitivity: bool = False  # write the per-group INT8 sensitivity table even without a budget
    sensitivity_level: str = "block"  # how finely groups.group_nodes cuts the network
    verify_images: int = 16  # held-out crops (other images than the calibration crops)
    batch: tuple[int, int, int] = (1, 16, 32)
    workspace_gb: float = 4.0
    timing_cache: Path | None = None  # None: <out_dir>/timing.cache (TensorRT only)
    opset: int = 17
    build_engines: bool = True  # False: ONNX files only, even where a builder is installed
    builder: str | None = None  # "tensorrt" | "tensorrt-rtx"; None: the one that can build here
    compute_capabilities: tuple[str, ...] | None = None  # TensorRT for RTX targets; None: the GPU's, else a default

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise the types once, here
        set_(self, "checkpoint", Path(self.checkpoint))
        set_(self, "out_dir", Path(self.out_dir))
        if not self.checkpoint.is_file():
            raise HrnextError(f"checkpoint {self.checkpoint} not found: pass the path of a .pth file")
        if self.input_size is not None:
            set_(self, "input_size", validate_input_size(self.input_size))
        set_(self, "precisions", check_export_precisions(self.precisions, "precisions"))
        if self.calib_dataset not in CALIB_DATASETS:
            raise HrnextError(f"calibration dataset {self.calib_dataset!r} is unknown: choose one of "
                              f"{', '.join(CALIB_DATASETS)}")
        if self.calib_data is not None:
            set_(self, "calib_data", Path(self.calib_data))
        if self.calib_det_family is not None and self.calib_dataset != OWN_IMAGES:
            raise HrnextError(f"--calib-det-family {self.calib_det_family} picks the preprocessing of "
                              f"--calib-detector, which finds the people of your own pictures (--calib-dataset "
                              f"{OWN_IMAGES}): drop it")
        if self.calib_det_family is not None and self.calib_detector is None:
            raise HrnextError(f"--calib-det-family {self.calib_det_family} picks a --calib-detector ONNX's "
                              "preprocessing, and none is given: pass --calib-detector, or drop it")
        if self.calib_dataset == OWN_IMAGES:
            self._check_own_images()
        else:
            if self.calib_data is not None and not self.calib_data.is_dir():
                what = "is not a folder" if self.calib_data.exists() else "not found"
                raise HrnextError(f"calibration data root {self.calib_data} {what}: pass the dataset root "
                                  f"(or --calib-dataset {OWN_IMAGES} for a video)")
            if self.calib_detector is not None or self.calib_boxes is not None:
                raise HrnextError(f"--calib-detector and --calib-boxes find the people of unlabelled pictures "
                                  f"(--calib-dataset {OWN_IMAGES}); a dataset's crops come from its annotated boxes: "
                                  "drop them")
        if self.calib_method not in CALIB_METHODS:
            raise HrnextError(f"calibration method {self.calib_method!r} is unknown: choose one of "
                              f"{', '.join(CALIB_METHODS)}")
        if self.calib_split is not None and self.calib_split not in CALIB_SPLITS:
            raise HrnextError(f"calibration split {self.calib_split!r} is unknown: choose one of {', '.join(CALIB_SPLITS)}")
        if self.sensitivity_level not in LEVELS:
            raise HrnextError(f"sensitivity level {self.sensitivity_level!r} is unknown: choose one of {', '.join(LEVELS)}")
        # Positive tests: NaN fails every comparison; an infinite budget would be no budget.
        if self.int8_budget is not None and not 0 < self.int8_budget < math.inf:
            raise HrnextError(f"--int8-budget {self.int8_budget} must be a positive number of pixels, e.g. 1")
        if self.fp16_budget is not None and not ("fp16" in self.precisions and 0 < self.fp16_budget < math.inf):
            raise HrnextError(f"--fp16-budget {self.fp16_budget} needs --fp16 and a positive number of pixels")
        if (self.int8_budget is not None or self.sensitivity or self.calib_study) and "int8" not in self.precisions:
            raise HrnextError("--int8-budget, --sensitivity and --calib-study work on the INT8 file: add --int8")
        if self.calib_images < 1 or self.verify_images < 1:
            raise HrnextError(f"calib_images and verify_images must be at least 1 (got {self.calib_images} and "
                              f"{self.verify_images})")
        batch = tuple(int(b) for b in self.batch)
        if len(batch) != 3 or not 1 <= batch[0] <= batch[1] <= batch[2]:
            raise HrnextError(f"batch profile {','.join(map(str, batch))} is not MIN,OPT,MAX with "
                              "1 <= MIN <= OPT <= MAX: write e.g. 1,16,32")
        set_(self, "batch", batch)
        if not 0 < self.workspace_gb < math.inf:
            raise HrnextError(f"workspace {self.workspace_gb} GB must be positive")
        if self.opset < 17:
            raise HrnextError(f"opset {self.opset} is too old: LayerNormalization needs 17 or newer")
        if self.timing_cache is not None:
            set_(self, "timing_cache", Path(self.timing_cache))
        if self.builder is not None:
            check_builder_name(self.builder)
        if not self.build_engines and (self.builder is not None or self.compute_capabilities is not None
                                       or self.timing_cache is not None):
            raise HrnextError("--no-engines builds no engine: drop --builder, --compute-capability and --timing-cache, "
                              "or --no-engines")
        if self.compute_capabilities is not None:
            if self.builder == TENSORRT:
                raise HrnextError("compute_capabilities are chosen for TensorRT for RTX builds only: TensorRT (builder "
                                  "tensorrt) builds for the GPU it runs on")
            set_(self, "compute_capabilities", parse_compute_capabilities(",".join(self.compute_capabilities)))

    def _check_own_images(self) -> None:
        if self.calib_data is None or not self.calib_data.exists():
            where = "" if self.calib_data is None else f" ({self.calib_data} not found)"
            raise HrnextError(f"--calib-dataset {OWN_IMAGES} calibrates on your own pictures{where}: pass "
                              "--calib-data with a folder of images or a video file")
        if self.calib_split is not None:
            raise HrnextError(f"--calib-split {self.calib_split} picks a dataset's split; {self.calib_data} is "
                              "pictures of your own: drop it")
        if self.calib_detector is not None and self.calib_boxes is not None:
            raise HrnextError("pass --calib-detector or --calib-boxes, not both")
        for field, flag, what in (("calib_detector", "--calib-detector", "detector ONNX"),
                                  ("calib_boxes", "--calib-boxes", "COCO-format detections file")):
            file = getattr(self, field)
            if file is not None:
                if not Path(file).is_file():
                    raise HrnextError(f"{flag} {file} not found: pass the {what}")
                object.__setattr__(self, field, Path(file))

    @property
    def timing_cache_path(self) -> Path:
        return self.timing_cache if self.timing_cache is not None else self.out_dir / "timing.cache"
