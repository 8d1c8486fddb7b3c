"""The main job in one command, on the bundled coco-mini sample: train, export, compare, draw.

1. train the small preset (``coco_mini_demo.yaml``: hrnext_tiny at 128x96) on coco-mini's 80
   training images, on the GPU when there is one: always the whole recipe (a fixed number of
   iterations, no time limit), so the model and its AP do not depend on the machine's speed;
   the output says how much of the recipe the model had;
2. export FP32, FP16 and INT8 ONNX (INT8 calibrated on those training images) and, where
   a builder is installed, engines (TensorRT for RTX builds them without a GPU);
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
from hrnext_trt.contract import check_export_precisions, check_threads, resolve_device
from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError
from hrnext_trt.export import ExportConfig, export_artifacts, summary
from hrnext_trt.export.folder import check_target
from hrnext_trt.training import load_config, train
from hrnext_trt.training.work_dir import read_run_config
from hrnext_trt.keypoints import get_meta
from hrnext_trt.predict import PredictConfig, PredictResult, run_predict
from hrnext_trt.predict.outputs import SUMMARY_NAME
from hrnext_trt.reports import Report, check_output_folder, check_writable
from hrnext_trt.trt_eval import TrtEvalConfig, run_trt_eval
from hrnext_trt.visualize import LISTING_NAME as VISUALIZE_LISTING, VisualizeConfig, visualize

log = logging.getLogger(__name__)

DEMO_DATASET = "coco"
DEMO_BUNDLE = "coco-mini"
OWN_DATA_NOTE = ("evaluated on coco-mini's own 80 training images with ground-truth boxes: the AP measures the "
                 "fit of the training set, not generalisation")


# In ``out/train``: the run there is a demo's, which the next demo replaces (it trains anew there).
DEMO_RUN_MARK = "demo_run.txt"


def demo_preset() -> Path:
    """The training preset of the demo (``train/presets/coco_mini_demo.yaml``, installed with the package)."""
    return recipe_path("presets/coco_mini_demo.yaml")


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo_out")
    checkpoint: Path | None = None  # skip training and use these weights (a coco checkpoint)
    train_options: tuple[str, ...] = ()  # KEY=VALUE overrides of the preset (tests shrink it)
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
        if self.checkpoint is None and (self.arch is not None or self.num_joints is not None):
            raise HrnextError("--arch and --joints describe a --checkpoint that does not record its model, and none "
                              "is given (the demo trains its own preset): pass --checkpoint, or drop them")
        check_threads(self.threads)
        check_export_precisions(self.precisions, "precisions")


class _Stages:
    """Numbered stage banners with elapsed times, logged (the table goes to stdout)."""

    def __init__(self, total: int):
        self.total, self.n = total, 0
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}  # stage name -> wall seconds

    def begin(self, name: str, title: str) -> tuple[str, float]:
        self.n += 1
        log.info("\n== [%d/%d] %s  (t = %s)", self.n, self.total, title, self.elapsed())
        return name, time.perf_counter()

    def done(self, started: tuple[str, float], what: str) -> None:
        name, t0 = started
        self.seconds[name] = time.perf_counter() - t0
        log.info("   done in %.0f s: %s", self.seconds[name], what)

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.seconds.items())


def run_demo(config: DemoConfig) -> "DemoResult":
    """Run the five stages into ``config.out``; returns the trt-eval report and the training's progress."""
    import torch

    check_writable(config.out, "--out", folder=True)
    # A re-run replaces its own outputs; anybody else's file in its folders stops it now, not minutes in.
    if config.checkpoint is None:
        check_demo_training_folder(config.out / "train")
    check_target(config.out / "engines")
    for folder, listing in ((config.out / "poses", VISUALIZE_LISTING), (config.out / "predict" / "image", SUMMARY_NAME),
                            (config.out / "predict" / "clip", SUMMARY_NAME)):
        check_output_folder(folder, listing, True, "demo", way_out="a demo replaces only its previous run's files")
    device = resolve_device(config.device)
    if config.checkpoint is not None:
        check_demo_checkpoint(config.checkpoint, config.arch, config.num_joints)
    if config.threads:
        torch.set_num_threads(config.threads)  # every stage: training, export checks, evaluation
    root = bundled_dataset_root(DEMO_BUNDLE)
    stages = _Stages(5)

    if config.checkpoint is None:
        n = torch.get_num_threads()
        threads = f" ({n} thread{'s' if n > 1 else ''})" if device == "cpu" else ""
        started = stages.begin("train", f"train the demo preset on {DEMO_BUNDLE} train (80 images) on {device}"
                                        f"{threads}: its whole recipe, however long this machine takes")
        checkpoint = train_demo_model(config.out / "train", device, config.train_options)
        training = TrainingProgress.of(checkpoint)  # the weights evaluated below
        stages.done(started, f"{training}; checkpoint {checkpoint}")
    else:
        started = stages.begin("train", f"training skipped: using {config.checkpoint}")
        checkpoint = Path(config.checkpoint)
        training = TrainingProgress.of(checkpoint)
        stages.done(started, f"no training; the checkpoint's: {training or 'not recorded in it'}")

    started = stages.begin("export", f"export {', '.join(p.upper() for p in config.precisions)} ONNX (INT8 "
                                     f"calibrated on {DEMO_BUNDLE} train) and TensorRT engines where possible")
    engines = config.out / "engines"
    # The engines' batch profile holds the comparison's batch (TensorRT for RTX builds them even without a GPU).
    manifest = export_artifacts(ExportConfig(checkpoint=checkpoint, out_dir=engines, precisions=config.precisions,
                                             calib_dataset=DEMO_DATASET, calib_data=root, arch=config.arch,
                                             num_joints=config.num_joints,
                                             batch=(1, min(16, config.batch), max(32, config.batch))))
    log.info("%s", "   " + summary(manifest, engines).replace("\n", "\n   "))
    stages.done(started, f"artifacts in {engines}")

    started = stages.begin("trt-eval", f"trt-eval every backend on {DEMO_BUNDLE} train ({OWN_DATA_NOTE})")
    report_dir = config.out / "report"
    report = run_trt_eval(TrtEvalConfig(
        checkpoint=checkpoint, engines=engines, dataset=DEMO_DATASET, data_root=root, split="train", boxes="gt",
        batch=config.batch, device=device, threads=config.threads, iters=config.iters, warmup=config.warmup,
        out=report_dir, notes=(OWN_DATA_NOTE,) + ((f"the model: {training}",) if training else ()),
        arch=config.arch, num_joints=config.num_joints))
    stages.done(started, f"reports and plot in {report_dir}")

    started = stages.begin("draw", "draw the PyTorch model's poses")
    reference = next(r for r in report.rows if r.status == "ok")
    pictures = visualize(VisualizeConfig(DEMO_DATASET, root, "train", config.out / "poses",
                                         results=Path(reference.results), max_images=config.pose_images,
                                         overwrite=True))
    stages.done(started, f"{len(pictures)} images in {config.out / 'poses'} "
                         f"({reference.backend} {reference.precision})")
    started = stages.begin("predict", "predict with the FP32 ONNX on a bundled crowd picture and a short clip "
                                      "(default HOG detector)")
    results = predict_on_bundled_media(engines / "model.onnx", config.out / "predict", device, config.threads)
    stages.done(started, "; ".join(f"{r.people} people in {r.frames} frame{'s' * (r.frames > 1)} "
                                   f"({r.timing.meta['frames_per_s']:.1f} frames/s): "
                                   + ", ".join(str(f) for f in r.files if f.suffix in (".jpg", ".mp4", ".json", ".jsonl")
                                               and f.name != "summary.json") for r in results))
    log.info("\nwhole demo: %s (min:s): %s", stages.elapsed(), stages.summary())
    return DemoResult(report, training)


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


def check_demo_training_folder(folder: Path) -> None:
    """The demo trains anew in ``folder``, deleting the run there: only a previous demo's (its mark)."""
    if folder.exists() and not folder.is_dir():
        raise HrnextError(f"{folder} is a file, where the demo trains: choose another --out, or move it")
    if not folder.is_dir() or (folder / DEMO_RUN_MARK).is_file() or _an_earlier_demos_run(folder):
        return
    found = sorted(p.name for p in folder.iterdir())
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise HrnextError(f"{folder} holds files no demo made ({shown}): the demo trains anew there, deleting a "
                          "training run's checkpoints; choose another --out, or move them")


def _an_earlier_demos_run(folder: Path) -> bool:
    """A run a demo made before demos marked theirs: its config.yaml trains the preset's model on the
    preset's bundled sample (no run of one's own looks so)."""
    old = read_run_config(folder)
    preset = load_config(demo_preset(), ["runtime.device=cpu"]).to_dict()
    try:
        return all(old[part][key] == preset[part][key] for part, key in (("model", "arch"), ("data", "train")))
    except (TypeError, KeyError):  # no config.yaml, or one of another shape
        return False


def train_demo_model(work_dir: Path, device: str, options: tuple[str, ...] = ()) -> Path:
    """Train the whole demo preset into ``work_dir`` (no time limit); the checkpoint's path."""
    config = load_config(demo_preset(), [f"runtime.device={device}", *options])
    check_demo_training_folder(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / DEMO_RUN_MARK).write_text("a demo's training run: the next `hrnext-trt demo` with this --out trains "
                                          "anew here, deleting it\n", encoding="utf-8")
    # The demo's folder is its own: running the demo again trains anew (force), never mixes runs.
    return train(config, work_dir, force=True)


@dataclass(frozen=True)
class TrainingProgress:
    """How much of its recipe a checkpoint's training ran."""

    epochs: int
    total_epochs: int
    iterations: int
    total_iterations: int

    @classmethod
    def of(cls, checkpoint: Path | None) -> "TrainingProgress | None":
        """Read from a checkpoint of this project's trainer; None for other checkpoints."""
        from hrnext_trt.models import read_checkpoint

        if checkpoint is None:
            return None
        ckpt = read_checkpoint(checkpoint)
        try:
            total_epochs = int(ckpt["config"]["schedule"]["epochs"])
            per_epoch = int(ckpt["scheduler"]["iters_per_epoch"])
            return cls(int(ckpt["epoch"]), total_epochs, int(ckpt["iteration"]), total_epochs * per_epoch)
        except (KeyError, TypeError):
            return None

    @property
    def complete(self) -> bool:
        return self.epochs >= self.total_epochs

    def __str__(self) -> str:
        done = (f"{self.iterations}/{self.total_iterations} iterations ({self.epochs}/{self.total_epochs} epochs) "
                "of its training recipe")
        return done if self.complete else done + ": only part of it, its AP is below what the whole recipe reaches"


@dataclass(frozen=True)
class DemoResult:
    report: Report  # trt-eval's
    training: TrainingProgress | None


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

