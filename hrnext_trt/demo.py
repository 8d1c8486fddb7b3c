"""The main job in one command, on the bundled coco-mini sample: train, export, compare, draw.

1. train the small preset (``coco_mini_demo.yaml``: hrnext_tiny at 128x96) on coco-mini's 80
   training images for a bounded time, on the GPU when there is one;
2. export FP32, FP16 and INT8 ONNX (INT8 calibrated on those training images) and, where
   TensorRT and a GPU exist, engines;
3. ``trt-eval`` every backend this machine has on the same images with ground-truth boxes --
   the model's own training data, so the AP shows the road works end to end, not how well the
   model generalises;
4. draw the predicted poses;
5. ``predict`` with the exported FP32 ONNX on a bundled crowd picture and on a short clip made
   from another bundled picture, people found by the default detector (no download).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.bundled import bundled_dataset_root, recipe_path
from hrnext_trt.contract import check_export_precisions, resolve_device
from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError
from hrnext_trt.export import ExportConfig, export_artifacts, summary
from hrnext_trt.training import load_config, train
from hrnext_trt.keypoints import get_meta
from hrnext_trt.predict import PredictConfig, PredictResult, run_predict
from hrnext_trt.reports import check_writable
from hrnext_trt.trt_eval import TrtEvalConfig, run_trt_eval
from hrnext_trt.visualize import VisualizeConfig, visualize

log = logging.getLogger(__name__)

DEMO_DATASET = "coco"
DEMO_BUNDLE = "coco-mini"
OWN_DATA_NOTE = ("evaluated on coco-mini's own 80 training images with ground-truth boxes: the AP measures the "
                 "fit of the training set, not generalisation")


def demo_preset() -> Path:
    """The training preset of the demo (``train/presets/coco_mini_demo.yaml``, installed with the package)."""
    return recipe_path("presets/coco_mini_demo.yaml")


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo_out")
    train_minutes: float = 8.0  # the training stage stops at the first epoch end past this budget
    checkpoint: Path | None = None  # skip training and use these weights (a coco checkpoint)
    arch: str | None = None  # for a checkpoint that does not record its model (the paper's mmpose files)
    num_joints: int | None = None
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    device: str = "auto"
    threads: int | None = None
    batch: int = 32
    iters: int = 10
    warmup: int = 2
    pose_images: int | None = None  # None: every image

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        if self.train_minutes <= 0:
            raise HrnextError(f"train_minutes must be positive, got {self.train_minutes}")
        check_export_precisions(self.precisions, "precisions")


class _Stages:
    """Numbered stage banners with elapsed times, logged (the table goes to stdout)."""

    def __init__(self, total: int):
        self.total, self.n = total, 0
        self.start = time.perf_counter()

    def begin(self, title: str) -> float:
        self.n += 1
        log.info("\n== [%d/%d] %s  (t = %s)", self.n, self.total, title, self.elapsed())
        return time.perf_counter()

    def done(self, started: float, what: str) -> None:
        log.info("   done in %.0f s: %s", time.perf_counter() - started, what)

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60}:{seconds % 60:02d}"


def run_demo(config: DemoConfig):
    """Run the four stages into ``config.out``; returns the trt-eval report."""
    check_writable(config.out, "--out", folder=True)
    device = resolve_device(config.device)
    if config.checkpoint is not None:
        check_demo_checkpoint(config.checkpoint, config.arch, config.num_joints)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)  # every stage: training, export checks, evaluation
    root = bundled_dataset_root(DEMO_BUNDLE)
    stages = _Stages(5)

    if config.checkpoint is None:
        started = stages.begin(f"train the demo preset on {DEMO_BUNDLE} train (80 images) on {device}, "
                               f"at most ~{config.train_minutes:g} min")
        checkpoint = train_demo_model(config.out / "train", config.train_minutes * 60, device)
        stages.done(started, f"checkpoint {checkpoint}")
    else:
        started = stages.begin(f"training skipped: using {config.checkpoint}")
        checkpoint = Path(config.checkpoint)
        stages.done(started, "no training")

    started = stages.begin(f"export {', '.join(p.upper() for p in config.precisions)} ONNX (INT8 calibrated on "
                           f"{DEMO_BUNDLE} train) and TensorRT engines where possible")
    engines = config.out / "engines"
    manifest = export_artifacts(ExportConfig(checkpoint=checkpoint, out_dir=engines, precisions=config.precisions,
                                             calib_dataset=DEMO_DATASET, calib_data=root, arch=config.arch,
                                             num_joints=config.num_joints))
    log.info("%s", "   " + summary(manifest, engines).replace("\n", "\n   "))
    stages.done(started, f"artifacts in {engines}")

    started = stages.begin(f"trt-eval every backend on {DEMO_BUNDLE} train ({OWN_DATA_NOTE})")
    report_dir = config.out / "report"
    report = run_trt_eval(TrtEvalConfig(
        checkpoint=checkpoint, engines=engines, dataset=DEMO_DATASET, data_root=root, split="train", boxes="gt",
        batch=config.batch, device=device, threads=config.threads, iters=config.iters, warmup=config.warmup,
        out=report_dir, notes=(OWN_DATA_NOTE,), arch=config.arch, num_joints=config.num_joints))
    stages.done(started, f"reports and plot in {report_dir}")

    started = stages.begin("draw the PyTorch model's poses")
    reference = next(r for r in report.rows if r.status == "ok")
    pictures = visualize(VisualizeConfig(DEMO_DATASET, root, "train", config.out / "poses",
                                         results=Path(reference.results), max_images=config.pose_images))
    stages.done(started, f"{len(pictures)} images in {config.out / 'poses'} "
                         f"({reference.backend} {reference.precision})")
    started = stages.begin("predict with the FP32 ONNX on a bundled crowd picture and a short clip (default "
                           "HOG detector)")
    results = predict_on_bundled_media(engines / "model.onnx", config.out / "predict", device, config.threads)
    stages.done(started, "; ".join(f"{r.people} people in {r.frames} frame{'s' * (r.frames > 1)} "
                                   f"({r.timing.meta['frames_per_s']:.1f} frames/s): "
                                   + ", ".join(str(f) for f in r.files if f.suffix in (".jpg", ".mp4", ".json", ".jsonl")
                                               and f.name != "summary.json") for r in results))
    log.info("\nwhole demo: %s (min:s)", stages.elapsed())
    return report


def check_demo_checkpoint(path: Path, arch: str | None, num_joints: int | None) -> None:
    """Before any work: the checkpoint loads, and it is a COCO-keypoint model (the demo scores on coco-mini)."""
    from hrnext_trt.models import checkpoint_spec, load_pose_model, read_checkpoint  # torch side

    ckpt = read_checkpoint(path)
    model = load_pose_model(ckpt, arch=arch, num_joints=num_joints, source=path)
    joints = get_meta(DEMO_DATASET).num_joints
    if model.num_joints != joints:
        dataset = checkpoint_spec(ckpt).dataset or ("crowdpose" if model.num_joints == 14 else None)
        hint = (f"; evaluate it with `hrnext-trt trt-eval --checkpoint {path} --dataset {dataset} --data-root ...`"
                if dataset else "")
        raise HrnextError(f"the demo scores on {DEMO_BUNDLE} ({joints} COCO joints) but {path} has {model.num_joints} "
                          f"joints{f' ({dataset})' if dataset else ''}: pass a COCO checkpoint{hint}")


def train_demo_model(work_dir: Path, budget_s: float, device: str) -> Path:
    """Train the demo preset into ``work_dir`` within about ``budget_s`` seconds; the checkpoint's path."""
    config = load_config(demo_preset(), [f"runtime.device={device}"])
    # The demo's folder is its own: running the demo again trains anew (force), never mixes runs.
    return train(config, work_dir, time_budget_s=budget_s, force=True)


# The last stage's media: a bundled crowd picture, and a clip made from another bundled picture
# (a slow pan, so people move through the frame and the tracker has work). The default HOG
# detector finds them: the demo needs no download.
PREDICT_IMAGE = ("ochuman-mini", "images/003799.jpg")  # footballers
PREDICT_CLIP = ("ochuman-mini", "images/000817.jpg")  # people walking in a hall
CLIP_FRAMES, CLIP_FPS, CLIP_SIDE = 24, 12, 480


def make_pan_clip(image_path: Path, path: Path, frames: int = CLIP_FRAMES, side: int = CLIP_SIDE,
                  fps: int = CLIP_FPS) -> Path:
    """An mp4 (longer side ``side``) of a window of 90 % of the picture panning from its top-left to
    its bottom-right corner: everyone stays whole and moves across the frame."""
    import cv2
    import numpy as np

    image = read_image(image_path)
    height, width = image.shape[:2]
    win_w, win_h = 0.9 * width, 0.9 * height
    scale = side / max(win_w, win_h)
    size = (2 * round(win_w * scale / 2), 2 * round(win_h * scale / 2))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        x0, y0 = (width - win_w) * t, (height - win_h) * t
        writer.write(cv2.warpAffine(image, np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]]), size,
                                    flags=cv2.INTER_AREA))
    writer.release()
    return path


def predict_on_bundled_media(model: Path, out: Path, device: str, threads: int | None) -> list[PredictResult]:
    """``predict`` on the bundled crowd picture and on the pan clip, into ``out/image`` and ``out/clip``."""
    out.mkdir(parents=True, exist_ok=True)
    image = bundled_dataset_root(PREDICT_IMAGE[0]) / PREDICT_IMAGE[1]
    clip = make_pan_clip(bundled_dataset_root(PREDICT_CLIP[0]) / PREDICT_CLIP[1], out / "clip.mp4")
    common = dict(model=model, device=device, threads=threads, overwrite=True)
    return [run_predict(PredictConfig(str(image), out=out / "image", **common)),
            run_predict(PredictConfig(str(clip), out=out / "clip", detect_every=2, show_fps=True, **common))]

