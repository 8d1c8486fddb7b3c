"""Accuracy and latency of the PyTorch model and of every exported artifact, side by side.

Every backend runs the same pipeline (``hrnext_trt.pipeline.predict``) on the same person boxes;
only the network call differs, so an accuracy gap between rows belongs to the backend. On one's
own unlabelled pictures (``dataset="images"``) accuracy is agreement with the reference backend's
poses of the same people (``hrnext_trt.agreement``).

Latency, two numbers per row:
- model only: the runner's ``infer`` on one batch of ``batch`` real crops of the dataset, timed
  by ``hrnext_trt.runners.timing`` (warm-up excluded; host clock on the CPU, CUDA events on the GPU,
  ONNX Runtime's host clock there);
  p50 / p95 per batch, images/s = batch / p50, speed-up = PyTorch p50 / row p50.
- end to end: persons per second of the whole evaluation run (read images, crop, infer with
  flip test, decode, NMS), wall clock.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.agreement import agreement, disagreement_sheet, gather_people, pose_keypoints
from hrnext_trt.compare import CPU_LOW_PRECISION_NOTE, Row, check_backends_can_run, compare, comparison_footnotes
from hrnext_trt.contract import (BACKENDS, INPUT_SIZE_HINT, OWN_IMAGES, PRECISIONS, TRT_EVAL_BATCH, check_count,
                                 check_threads, resolve_device, unavailable_reason)
from hrnext_trt.data import PROTOCOL_BOXES, TEST_SPLIT, load_dataset
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation import evaluate_results, metric_in_percent, primary_metric
from hrnext_trt.keypoints import KeypointMeta, model_meta
from hrnext_trt.pipeline import fill_batch, iter_batches, predict
from hrnext_trt.manifest import Manifest, sha256_file
from hrnext_trt.reports import (Column, Report, accuracy_latency_png, check_not_another_commands, check_writable,
                                write_files)
from hrnext_trt.runners import PyTorchRunner, Runner
from hrnext_trt.runners.export_folder import check_outside_export, discover_artifacts, run_input_size
from hrnext_trt.runners.timing import clock_note, time_runner

LATENCY_FOOTNOTE = ("latency: model-only runner.infer on one batch of {batch} real crops, {iters} timed calls after "
                    "{warmup} warm-up ({clock}); p50/p95 per batch; img/s = batch / p50; speed-up = {reference} p50 / "
                    "row p50. e2e persons/s: the whole evaluation run ({e2e}), wall clock.")
E2E_DATASET = "read, crop, infer{flip}, decode, NMS"
E2E_SINGLE_PERSON = "read, crop, infer{flip}, decode; no NMS: one pose per annotated person"  # MPII's protocol
E2E_PICTURES = "infer{flip} and decode the crops, read and cropped once before"
AGREEMENT_FOOTNOTE = ("no labels: each row's pose of every person is compared with the {reference}'s pose of that "
                      "person ({persons} people in {pictures} {unit}s of {root}, found by {people_from}). OKS: object "
                      "keypoint similarity as OKS-NMS computes it (crop-box area, the model's keypoint sigmas), mean "
                      "over people; agree: share of people whose pose OKS-NMS would take for the reference's "
                      "(OKS > 0.9); kpt px: mean joint distance in picture pixels. With --out, "
                      "agreement_<backend>_<precision>.jpg draws the people each row changed most beside the "
                      "reference's poses.")
OTHER_CHECKPOINT_NOTE = "not the exported checkpoint"
METRIC_KEYS = ("AP", "AP50", "AP75", "AR", "AP_easy", "AP_medium", "AP_hard",
               "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1", "mAP")
# Row fields of metric names that are not identifiers.
FIELDS = {"Mean@0.1": "Mean_at_0_1"}
# The table's accuracy columns per protocol (keypoints.KeypointMeta.eval_mode).
_GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
ACCURACY_COLUMNS = {"coco": ("AP", "AP50", "AP75", "AR"),
                    "crowdpose": ("AP", "AP50", "AP75", "AR", "AP_easy", "AP_medium", "AP_hard"),
                    "pckh": _GROUPS + ("Mean", "Mean@0.1"), "posetrack": _GROUPS + ("mAP",),
                    OWN_IMAGES: ("OKS", "agree", "kpt_px")}
FORMATS = {"AP": (".3f", "+.4f"), "OKS": (".4f", "+.4f")}  # value and delta formats; other metrics are percent


@dataclass(frozen=True)
class TrtEvalConfig:
    checkpoint: Path | None  # None: the export's own source checkpoint if it is still here, else no PyTorch row
    engines: Path | None  # export folder; None: PyTorch only
    dataset: str  # a dataset layout, or OWN_IMAGES: one's own unlabelled pictures (agreement, no AP)
    data_root: Path  # OWN_IMAGES: a folder of images or a video
    split: str | None = None  # None: the dataset's test split
    boxes: str | None = None  # "gt" | "det"; None: the dataset's test protocol
    det_file: Path | None = None  # detector boxes, COCO-format (OWN_IMAGES: the people's, instead of a detector)
    detector: Path | None = None  # OWN_IMAGES: a person detector ONNX (None and no det_file: OpenCV's HOG)
    det_family: str | None = None  # the detector's preprocessing; None: from its layout and name
    backends: tuple[str, ...] = BACKENDS
    batch: int = TRT_EVAL_BATCH
    device: str = "auto"  # for PyTorch and ONNX Runtime; TensorRT is always CUDA
    threads: int | None = None
    flip_test: bool | None = None  # None: as the checkpoint's recipe validates (the manifest records it)
    iters: int = 20
    warmup: int = 3
    out: Path | None = None  # report folder: trt_eval.{json,csv,md,png}
    json: Path | None = None  # an extra copy of the JSON report
    notes: tuple[str, ...] = ()  # extra footnotes (what the numbers mean for this data)
    progress: bool = True
    arch: str | None = None  # for checkpoints that do not record their model (the paper's mmpose files)
    num_joints: int | None = None
    input_size: tuple[int, int] | None = None  # for such checkpoints without an export folder
    other_checkpoint: bool = False  # compare a checkpoint other than the exported one (labelled as such)

    def __post_init__(self):
        if self.checkpoint is None and self.engines is None:
            raise HrnextError("nothing to evaluate: give a checkpoint and/or an engines folder")
        if self.other_checkpoint and self.checkpoint is None:
            raise HrnextError("--other-checkpoint compares a --checkpoint other than the exported one, and none is "
                              "given (the export's own source checkpoint is used): pass --checkpoint, or drop it")
        if self.boxes == "gt" and self.det_file is not None:
            raise HrnextError("--det-file gives detector boxes and --boxes gt scores ground-truth boxes: drop one")
        if self.dataset == OWN_IMAGES:
            if self.split is not None or self.boxes is not None:
                raise HrnextError(f"--split and --boxes choose a dataset's split and boxes; {self.data_root} is "
                                  "pictures of your own: drop them")
            if self.detector is not None and self.det_file is not None:
                raise HrnextError("pass --detector or --det-file, not both")
            if not Path(self.data_root).exists():
                raise HrnextError(f"--data-root {self.data_root} not found: pass a folder of your pictures or a video")
        elif self.detector is not None:
            raise HrnextError(f"--detector finds the people of your own pictures (--dataset {OWN_IMAGES}); a "
                              f"dataset's boxes come from its layout or --det-file: drop it")
        if self.det_family is not None and self.dataset != OWN_IMAGES:
            raise HrnextError(f"--det-family {self.det_family} picks the preprocessing of --detector, which finds the "
                              f"people of your own pictures (--dataset {OWN_IMAGES}): drop it")
        if self.det_family is not None and self.detector is None:
            raise HrnextError(f"--det-family {self.det_family} picks a --detector ONNX's preprocessing, and none is "
                              "given: pass --detector, or drop it")
        check_count("batch", self.batch)
        if self.iters < 1 or self.warmup < 0:
            raise HrnextError(f"--iters must be >= 1 and --warmup >= 0 (got {self.iters} and {self.warmup})")
        check_threads(self.threads)
        resolve_device(self.device)


def run_trt_eval(config: TrtEvalConfig) -> Report:
    """Evaluate every backend, print nothing, write the reports when ``config.out`` / ``json`` say so."""
    # Every check that can fail runs here, before the evaluation passes (minutes on a real test set).
    check_writable(config.out, "--out", folder=True)
    check_writable(config.json, "--json", folder=False)
    check_outside_export(config.out, "--out", config.engines)
    if config.out is not None:
        check_not_another_commands(config.out, "--out", "trt-eval")
    check_outside_export(config.json, "--json", config.engines)
    if config.out is not None and config.dataset == OWN_IMAGES and Path(config.out).resolve() == \
            Path(config.data_root).resolve():
        raise HrnextError(f"--out {config.out} is the folder of the pictures: the next run would read its sheets "
                          "and charts as pictures; choose another folder")
    device = resolve_device(config.device)
    artifacts = discover_artifacts(config.engines) if config.engines is not None else []
    manifest = artifacts[0].manifest if artifacts else None
    source, no_reference = _source_checkpoint(config, manifest)
    if source is not None:
        config = replace(config, checkpoint=source)
    check_backends_can_run(config.backends, device, model=config.checkpoint is not None, artifacts=artifacts)
    model, model_input_size, recipe_flip, model_dataset = _load_model(config, manifest, artifacts)
    flip_unknown = recipe_flip is None and config.flip_test is None
    # Where nothing records the recipe's choice: flip test, the paper's protocol (and a footnote says so).
    config = replace(config, flip_test=(recipe_flip is not False) if config.flip_test is None else config.flip_test)
    input_size = run_input_size(config.input_size, model_input_size, artifacts)
    if input_size is None:
        raise HrnextError("the input size is unknown: the checkpoint does not record it and there is no export "
                          f"manifest: pass --input-size ({INPUT_SIZE_HINT})")
    # The manifest's own source checkpoint had its sha256 checked when it was picked.
    same_checkpoint = True if source is not None else _check_exported_checkpoint(config, manifest)
    runners = [PyTorchRunner(model, "fp32", device, threads=config.threads)] \
        if "pytorch" in config.backends and model is not None else []
    runners += [a.runner(device, config.threads) for a in artifacts if a.backend in config.backends]
    for runner in runners:
        # --batch inside every engine's profile, before any work; a backend this machine cannot run
        # becomes a row that says why, whatever its profile.
        if not unavailable_reason(runner.backend, runner.device):
            runner.check_batch(config.batch)

    subject = _OnPictures(config, input_size, _model_keypoints(model, manifest, artifacts, model_dataset)) \
        if config.dataset == OWN_IMAGES else _OnDataset(config, input_size, model, manifest)
    key, eval_mode = subject.key, subject.eval_mode
    predictions: dict[str, tuple[EvalRow, object]] = {}  # file name -> (row, results list or sheet picture)

    def measure(runner: Runner) -> list[EvalRow]:
        row, name, content = subject.measure(runner)
        if name in predictions and runner.path is not None:  # two files of one backend and precision: both kept
            name = f"{Path(name).stem}_{runner.path.stem}{Path(name).suffix}"
        if content is not None:
            predictions[name] = (row, content)
        return [row]

    rows = compare(runners, measure, EvalRow, artifacts, config.backends, subject.first_row_reference)
    reference = subject.reference_name(rows)
    if no_reference:  # asked for, but not there: a row that says why, not a silently missing one
        rows.insert(0, EvalRow.unavailable("pytorch", "fp32", device, no_reference))
    for row in rows:  # unavailable rows too: every row of the report names the same headline metric
        row.metric = key
    if same_checkpoint is False:
        for row in rows:
            if row.backend == "pytorch":
                row.notes = " ".join(filter(None, [row.notes, OTHER_CHECKPOINT_NOTE]))

    e2e = subject.e2e.format(flip=" with flip test" if config.flip_test else "")
    footnotes = [*subject.lead_footnotes(),
                 LATENCY_FOOTNOTE.format(batch=config.batch, iters=config.iters, warmup=config.warmup,
                                         clock=clock_note(device), e2e=e2e, reference=reference),
                 *comparison_footnotes(rows), *config.notes]
    empty = [k for k in ACCURACY_COLUMNS[eval_mode] if any(r.status == "ok" and getattr(r, FIELDS.get(k, k)) is None
                                                             for r in rows)]
    if empty:
        nothing = "no labelled joint of that group (NaN, not a score)" if eval_mode in ("pckh", "posetrack") else \
            "no person of that category (the COCO tools' -1, not a score)"
        footnotes.append(f"{', '.join(empty)}: - where the split has {nothing}")
    if flip_unknown:
        footnotes.append("flip test on (the paper's protocol): neither a checkpoint nor the files say whether their "
                         "recipe validated with it (files exported before hrnext-trt recorded it); pass --no-flip "
                         "if it did not")
    if source is not None:
        footnotes.append(f"the PyTorch row is {source}, the checkpoint manifest.json records the export "
                         "was made from (sha256 checked; no --checkpoint given)")
    if same_checkpoint is False:
        footnotes.append(f"{OTHER_CHECKPOINT_NOTE}: the PyTorch row is {config.checkpoint}, the export was made from "
                         f"{manifest['source_checkpoint']['path']}; dAP compares two models, not a "
                         "backend with its source")
    meta = {"checkpoint_is_exported_one": same_checkpoint, "dataset": config.dataset, **subject.meta(),
            "input_size": list(input_size), "batch": config.batch, "device": device,
            "flip_test": config.flip_test, "checkpoint": str(config.checkpoint) if config.checkpoint else None,
            "engines": str(config.engines) if config.engines else None, "metric": key}
    columns = _columns(eval_mode, key)
    if len({(r.backend, r.precision) for r in rows}) < len(rows):  # rows the file alone tells apart
        columns.insert(2, Column("file", "file"))
    report = Report(f"{subject.title()}, input {input_size[0]}x{input_size[1]}, batch {config.batch}",
                    columns, rows, footnotes, meta)
    write_reports(report, config.out, config.json, predictions)
    return report


def results_file(backend: str, precision: str) -> str:
    return f"results_{backend}_{precision}.json"


def sheet_file(backend: str, precision: str) -> str:
    """A row's disagreement sheet on one's own pictures (``agreement.disagreement_sheet``)."""
    return f"agreement_{backend}_{precision}.jpg"


PREDICTION_FILES = {name(backend, precision) for name in (results_file, sheet_file) for backend in BACKENDS
                    for precision in PRECISIONS}


def write_reports(report: Report, out: Path | None, json_path: Path | None,
                  predictions: dict[str, tuple[EvalRow, object]] | None = None) -> dict[str, Path]:
    """trt_eval.{json,csv,md}, the accuracy-vs-latency plot and what each row predicted
    (``predictions``: file name -> (row, COCO-format results, or the picture of its disagreement
    sheet)) in ``out``; a JSON copy at ``json_path``. Written at the end, all together or none (a
    full disk, an interruption): the previous reports stay as they were, never mixed with new ones.
    Rows name their files by absolute path (readable from wherever the report is read)."""
    written = {}
    if out is not None:
        out = Path(out).resolve()
        ours = PREDICTION_FILES | _previous_prediction_files(out)  # read before this run's report replaces it
        files = {}
        for name, (row, content) in (predictions or {}).items():
            if name.endswith(".jpg"):
                row.sheet = str(out / name)
                files[out / name] = cv2.imencode(".jpg", content)[1].tobytes()
            else:
                row.results = str(out / name)
                files[out / name] = json.dumps(content).encode()
        report_files = report.files(out, "trt_eval")
        meta = report.meta
        metric = meta.get("metric", "AP")
        rows = [{**r.to_dict(), "label": row_label(r, report.rows)} for r in report.rows]
        caption = f"* {CPU_LOW_PRECISION_NOTE}" if any(r.cpu_low_precision for r in report.rows) else ""
        report_files["plot"] = (out / "trt_eval.png", accuracy_latency_png(
            rows, x="p50_ms", y=FIELDS.get(metric, metric), label="label",
            x_label=f"model latency p50 per batch of {meta['batch']} (ms, {meta['device']})", y_label=metric,
            title=_plot_title(meta), caption=caption))
        write_files({**files, **dict(report_files.values())})
        written = {kind: path for kind, (path, _) in report_files.items()}
        for stale in ours - set(predictions or {}):  # of rows this run did not make
            # Only names this command writes or its last report listed: a user's own results_*.json stays.
            (out / stale).unlink(missing_ok=True)
    if json_path is not None:
        written["json_copy"] = report.write_json(json_path)
    return written


def _previous_prediction_files(out: Path) -> set[str]:
    """The results and sheet files the report already in ``out`` lists (its rows' own names, such as
    a second INT8 file's ``results_onnxruntime_int8_model.json``)."""
    try:
        rows = json.loads((out / "trt_eval.json").read_text(encoding="utf-8"))["rows"]
        return {Path(path).name for row in rows for path in (row.get("results"), row.get("sheet"))
                if isinstance(path, str) and Path(path).parent == out}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def row_label(row: EvalRow, rows: list[EvalRow]) -> str:
    """A row's name in the plot: backend and precision, with its file where another row has the same two."""
    same = sum((r.backend, r.precision) == (row.backend, row.precision) for r in rows) > 1
    return (f"{row.backend} {row.precision}{f' ({row.file})' if same and row.file else ''}"
            f"{' *' if row.cpu_low_precision else ''}")


def _plot_title(meta: dict) -> str:
    if meta["dataset"] == OWN_IMAGES:
        return f"{Path(meta['root']).name}: agreement with {meta['reference']} vs latency"
    return f"{meta['dataset']} {meta['split']} ({meta['boxes']} boxes): accuracy vs latency"


def _load_model(config: TrtEvalConfig, manifest: Manifest | None, artifacts: list):
    """The PyTorch model (None when there is no PyTorch row), the checkpoint's input size (or None),
    whether its recipe scores with flip test (the checkpoint's, else the export's: its manifest, or
    the ONNX metadata of a folder copied without one; None where nothing says) and the dataset whose
    joints the model predicts (None where nothing records it)."""
    if config.checkpoint is None:
        if manifest is not None:
            return None, None, manifest.flip_test, manifest.model.dataset
        specs = [a.spec for a in artifacts if a.spec is not None]
        return (None, None, next((s.flip_test for s in specs if s.flip_test is not None), None),
                next((s.dataset for s in specs if s.dataset), None))
    from hrnext_trt.models import checkpoint_spec, load_pose_model, read_checkpoint, recipe_flip_test  # torch side

    ckpt = read_checkpoint(config.checkpoint)
    spec = checkpoint_spec(ckpt)
    flip = recipe_flip_test(ckpt)
    # The export's manifest checks the file itself (sha256); a copied folder its model: the one the
    # checkpoint records, else the one --arch/--joints make of it (the paper's mmpose files record none).
    arch, joints = spec.arch or config.arch, spec.num_joints or config.num_joints
    for artifact in artifacts:
        artifact.check_model(arch, joints, f"--checkpoint {config.checkpoint}")
    dataset = spec.dataset or (manifest.model.dataset if manifest is not None else None)
    if "pytorch" not in config.backends:
        return None, spec.input_size, flip, dataset
    # The paper's mmpose files do not record their model: --arch/--joints, else the export manifest.
    model = load_pose_model(ckpt, arch=config.arch, num_joints=config.num_joints, source=config.checkpoint,
                            exported=manifest.model if manifest is not None else None)
    return model, spec.input_size, flip, dataset


def _model_keypoints(model, manifest: Manifest | None, artifacts: list, dataset: str | None) -> KeypointMeta:
    """The keypoints the model predicts (flip pairs, OKS sigmas): its recorded dataset's, else its joint count's."""
    joints = model.num_joints if model is not None else manifest.model.num_joints if manifest is not None else \
        next((a.spec.num_joints for a in artifacts if a.spec is not None and a.spec.num_joints), None)
    if not dataset and joints is None:
        raise HrnextError("the model's joints are unknown: nothing records them; pass --checkpoint with --joints")
    return model_meta(dataset, joints)


def _check_joints(model, manifest: Manifest | None, dataset: str, dataset_joints: int) -> None:
    """One line before any work when the model's head has another joint count than the dataset."""
    joints = model.num_joints if model is not None else manifest.model.num_joints if manifest is not None else None
    if joints is not None and joints != dataset_joints:
        raise HrnextError(f"the model predicts {joints} joints but {dataset} has {dataset_joints} (17: coco, ochuman, "
                          "posetrack; 14: crowdpose; 16: mpii): evaluate it with the --dataset of its joints, or "
                          f"pass a {dataset} model")


def _source_checkpoint(config: TrtEvalConfig, manifest: Manifest | None) -> tuple[Path | None, str | None]:
    """Without ``--checkpoint`` the PyTorch row is the export's own source checkpoint, which its
    manifest names with a sha256, if that file is still there unchanged: (that path, None); else
    (None, why there is no PyTorch row). (None, None) when a checkpoint was given or no PyTorch row asked for."""
    if config.checkpoint is not None or "pytorch" not in config.backends:
        return None, None
    if manifest is None:
        return None, "no --checkpoint: pass the PyTorch checkpoint for the reference row"
    source = Path(manifest["source_checkpoint"]["path"])
    if not source.is_file():
        return None, (f"no --checkpoint, and the export's source checkpoint {source} is not on this machine: "
                      "pass --checkpoint")
    if sha256_file(source) != manifest["source_checkpoint"]["sha256"]:
        return None, (f"no --checkpoint, and the export's source checkpoint {source} has changed since the "
                      "export: pass --checkpoint (with --other-checkpoint to compare that file anyway)")
    return source, None


def _check_exported_checkpoint(config: TrtEvalConfig, manifest: Manifest | None) -> bool | None:
    """Whether ``--checkpoint`` is the file the export was made from (its manifest records the sha256);
    None when there is nothing to compare. A different one is refused unless ``other_checkpoint``."""
    if config.checkpoint is None or manifest is None:
        return None
    source = manifest["source_checkpoint"]
    if sha256_file(config.checkpoint) == source["sha256"]:
        return True
    if not config.other_checkpoint:
        raise HrnextError(f"--checkpoint {config.checkpoint} is not the checkpoint {config.engines} was exported "
                          f"from ({source['path']}, sha256 {source['sha256'][:12]}...): pass that file, export this "
                          "one, or add --other-checkpoint to compare the two models anyway")
    return False


class _OnDataset:
    """A labelled split: each row's accuracy by its protocol's tools (AP; MPII's PCKh; PoseTrack's mAP)
    and its COCO-format results."""

    def __init__(self, config: TrtEvalConfig, input_size: tuple[int, int], model, manifest: Manifest | None):
        self.config, self.input_size = config, input_size
        self.dataset = load_dataset(config.dataset, config.data_root, config.split or TEST_SPLIT[config.dataset],
                                    boxes=config.boxes or PROTOCOL_BOXES[config.dataset], det_file=config.det_file)
        if not len(self.dataset):
            raise HrnextError(f"{config.dataset} {self.dataset.split} has no person boxes to evaluate")
        _check_joints(model, manifest, config.dataset, self.dataset.meta.num_joints)
        self.crops = latency_batch(self.dataset, input_size, config.batch)
        self.key = primary_metric(config.dataset)
        self.eval_mode = self.dataset.meta.eval_mode
        self.e2e = E2E_SINGLE_PERSON if self.eval_mode == "pckh" else E2E_DATASET

    def measure(self, runner: Runner) -> tuple["EvalRow", str, list]:
        row, results = _evaluate(runner, self.dataset, self.input_size, self.crops, self.config, self.key)
        return row, results_file(runner.backend, runner.precision), results

    first_row_reference = False  # compared with the PyTorch row only

    def reference_name(self, rows: list["EvalRow"]) -> str:
        return "PyTorch"

    def lead_footnotes(self) -> list[str]:
        if not metric_in_percent(self.config.dataset):
            return []
        toolkit = "the MPII toolkit's PCKh" if self.eval_mode == "pckh" else "poseval's AP"
        return [f"accuracy columns are percent (0 to 100), as {toolkit} is printed; d{self.key} is in "
                "percentage points"]

    def meta(self) -> dict:
        return {"split": self.dataset.split, "boxes": self.dataset.boxes, "persons": len(self.dataset),
                "images": len(self.dataset.images)}

    def title(self) -> str:
        return (f"trt-eval: {self.config.dataset} {self.dataset.split} ({self.dataset.boxes} boxes, "
                f"{len(self.dataset)} persons, {len(self.dataset.images)} images)")


class _OnPictures:
    """One's own unlabelled pictures: each row's agreement with the first row measured (PyTorch
    FP32 where it runs, else the export's first file) and the picture of the people it changed most."""

    e2e = E2E_PICTURES
    key = "OKS"
    eval_mode = OWN_IMAGES

    def __init__(self, config: TrtEvalConfig, input_size: tuple[int, int], keypoints: KeypointMeta):
        self.config, self.input_size, self.keypoints = config, input_size, keypoints
        self.people = gather_people(config.data_root, input_size, config.detector, config.det_file,
                                    config.det_family)
        self.crops = self.people.latency_batch(config.batch)
        self.reference: dict = {}  # "keypoints" and "name" of the first row measured

    def measure(self, runner: Runner) -> tuple["EvalRow", str, np.ndarray | None]:
        row, sheet = _agree(runner, self.people, self.input_size, self.crops, self.config, self.keypoints,
                            self.reference)
        return row, sheet_file(runner.backend, runner.precision), sheet

    # Without a PyTorch row every row is compared with the agreement's reference, the first row
    # measured, in dOKS and speed-up alike (was: both columns empty).
    first_row_reference = True

    def reference_name(self, rows: list["EvalRow"]) -> str:
        """What dOKS and speed-up compare with: PyTorch where it ran, else the first row measured."""
        return "PyTorch" if any(r.backend == "pytorch" and r.status == "ok" for r in rows) else self.reference["name"]

    def lead_footnotes(self) -> list[str]:
        return [AGREEMENT_FOOTNOTE.format(reference=self.reference["name"], **self.people.source)]

    def meta(self) -> dict:
        source = self.people.source
        return {"split": None, "boxes": source["people_from"], "persons": len(self.people),
                "images": source["pictures"], "root": source["root"], "reference": self.reference["name"]}

    def title(self) -> str:
        source = self.people.source
        return (f"trt-eval: agreement with {self.reference['name']} on {len(self.people)} people in "
                f"{source['pictures']} {source['unit']}s of {source['root']}")


def latency_batch(dataset, input_size: tuple[int, int], batch: int) -> np.ndarray:
    """``batch`` real crops of the dataset (its first persons, repeated if it has fewer)."""
    return fill_batch(next(iter_batches(dataset, input_size, batch)).images, batch)


@dataclass
class EvalRow(Row):
    """One backend x precision: accuracy on the dataset and latency of one batch."""

    file: str | None = None  # the artifact's file name (None: the PyTorch model)
    status: str = "ok"  # "ok" | "unavailable"
    AP: float | None = None
    AP50: float | None = None
    AP75: float | None = None
    AR: float | None = None
    AP_easy: float | None = None
    AP_medium: float | None = None
    AP_hard: float | None = None
    # MPII (PCKh, percent) and PoseTrack (poseval AP, percent)
    Head: float | None = None
    Shoulder: float | None = None
    Elbow: float | None = None
    Wrist: float | None = None
    Hip: float | None = None
    Knee: float | None = None
    Ankle: float | None = None
    Mean: float | None = None
    Mean_at_0_1: float | None = None  # MPII's Mean@0.1
    mAP: float | None = None
    metric: str = "AP"  # the headline metric delta_AP compares: AP, Mean (MPII) or mAP (PoseTrack)
    delta_AP: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    images_per_s: float | None = None
    speedup: float | None = None
    e2e_persons_per_s: float | None = None
    e2e_s: float | None = None
    results: str | None = None  # the backend's COCO-format results file
    notes: str = ""
    latency: dict | None = None  # every LatencyStats figure

    # agreement on one's own pictures (hrnext_trt.agreement)
    OKS: float | None = None
    agree: float | None = None
    kpt_px: float | None = None
    sheet: str | None = None  # the picture of the people this row changed most

    OPTIONAL = ("latency", "OKS", "agree", "kpt_px", "sheet")

    @classmethod
    def unavailable(cls, backend: str, precision: str, device: str, reason: str, runner: Runner | None = None):
        file = runner.path.name if runner is not None and runner.path is not None else None
        return cls(backend, precision, device, file=file, status="unavailable", notes=reason)

    def compare_with(self, reference: "EvalRow") -> None:
        mine, theirs = getattr(self, self.metric), getattr(reference, self.metric)
        self.delta_AP = None if mine is None or theirs is None else mine - theirs
        self.speedup = reference.p50_ms / self.p50_ms


def _evaluate(runner: Runner, dataset, input_size, crops: np.ndarray, config: TrtEvalConfig,
              metric: str = "AP") -> tuple[EvalRow, list]:
    """The row of an active runner and its COCO-format results (written by :func:`write_reports`)."""
    start = time.perf_counter()
    results = predict(dataset, runner.heatmap_fn(), input_size, batch_size=config.batch,
                      flip_test=config.flip_test, progress=config.progress)
    e2e_s = time.perf_counter() - start
    stats = time_runner(runner, crops, iters=config.iters, warmup=config.warmup)
    metrics = evaluate_results(dataset.name, dataset.ann_file, results)
    return EvalRow.for_runner(
        runner, file=runner.path.name if runner.path is not None else None,
        # The COCO tools' -1 marks a category without people (CrowdPose's easy or hard images), and NaN
        # PCKh's or poseval's group without a labelled joint: no score either.
        metric=metric, **{FIELDS.get(k, k): None if metrics[k] == -1 or not math.isfinite(metrics[k]) else metrics[k]
                          for k in METRIC_KEYS if k in metrics},
        p50_ms=stats.median_ms, p95_ms=stats.p95_ms, images_per_s=stats.images_per_s,
        e2e_persons_per_s=len(dataset) / e2e_s, e2e_s=e2e_s, latency=stats.to_dict()), results


def _agree(runner: Runner, people, input_size, crops: np.ndarray, config: TrtEvalConfig, meta: KeypointMeta,
           reference: dict) -> tuple[EvalRow, np.ndarray | None]:
    """The row of an active runner on one's own pictures: agreement with ``reference`` (the first
    row measured, which this one becomes when there is none yet) and latency; and the picture of
    the people it changed most (None for the reference itself)."""
    start = time.perf_counter()
    keypoints = pose_keypoints(runner.heatmap_fn(), people, input_size, meta.num_joints, config.batch,
                               meta.flip_index if config.flip_test else None, config.progress,
                               f"{runner.backend} {runner.precision}")
    e2e_s = time.perf_counter() - start
    stats = time_runner(runner, crops, iters=config.iters, warmup=config.warmup)
    name = f"{runner.backend} {runner.precision}"
    sheet = None if not reference else disagreement_sheet(people, keypoints, reference["keypoints"], meta,
                                                          input_size, (reference["name"], name))
    if not reference:
        reference.update(keypoints=keypoints, name=name)
    return EvalRow.for_runner(
        runner, file=runner.path.name if runner.path is not None else None, metric="OKS",
        **agreement(keypoints, reference["keypoints"], people.scales, meta.sigmas),
        p50_ms=stats.median_ms, p95_ms=stats.p95_ms, images_per_s=stats.images_per_s,
        e2e_persons_per_s=len(people) / e2e_s, e2e_s=e2e_s, latency=stats.to_dict()), sheet


def _columns(eval_mode: str = "coco", key: str = "AP") -> list[Column]:
    # AP is a fraction (COCO tools); PCKh and poseval's AP are percent; OKS a similarity from 0 to 1.
    fmt, delta_fmt = FORMATS.get(key, (".1f", "+.2f"))
    formats = {"agree": ".1%", "kpt_px": ".2f"}
    metrics = [Column(FIELDS.get(k, k), k.replace("_medium", " med").replace("kpt_px", "kpt px").replace("_", " "),
                      formats.get(k, fmt))
               for k in ACCURACY_COLUMNS[eval_mode]]
    return [Column("backend", "backend"), Column("precision", "precision"), Column("device", "device"),
            *metrics, Column("delta_AP", f"d{key}", delta_fmt), Column("p50_ms", "p50 ms", ".2f"),
            Column("p95_ms", "p95 ms", ".2f"), Column("images_per_s", "img/s", ".1f"),
            Column("speedup", "speed-up", ".2f"), Column("e2e_persons_per_s", "e2e persons/s", ".1f"),
            Column("status", "status"), Column("notes", "notes")]
