"""``predict``: poses on an image, a folder of images, a video or a camera, through any backend.

One loop for every source: read a frame -> person boxes (detector every ``detect_every`` frames
of a video, IoU tracking in between) -> crops -> pose network on crops of several frames at once
(up to ``batch``) -> decode, rescoring and OKS-NMS -> draw -> write. The crop, network call and
decoding are the pipeline's own (``hrnext_trt.pipeline``, ``hrnext_trt.data``), so a pose here
equals the one ``trt-eval`` scores for the same box.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hrnext_trt import interrupts
from hrnext_trt.contract import check_count, check_fraction, check_threads, resolve_device
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import DET_IOU_THR, DET_SCORE_THR, Boxes
from hrnext_trt.predict.boxes_file import BoxesFile, open_boxes_file
from hrnext_trt.predict.estimator import PersonCrops, PoseEstimator
from hrnext_trt.predict.outputs import ImagesOutput, VideoOutput, prepare_out_dir, write_summary
from hrnext_trt.predict.poses import annotate
from hrnext_trt.predict.sources import Frame, ImageSource, VideoSource, open_source
from hrnext_trt.predict.timing import StageTimer, timing_report
from hrnext_trt.predict.video import VideoPoses
from hrnext_trt.progress import progress_bar
from hrnext_trt.reports import Report

log = logging.getLogger(__name__)

SEQUENCE_FPS = 30.0  # a frame folder records no rate; PoseTrack's and most cameras' are 25-30


@dataclass(frozen=True)
class PredictConfig:
    source: str  # image, folder, video file or camera index
    model: Path  # checkpoint, ONNX file or TensorRT engine
    arch: str | None = None  # for checkpoints that do not record their model (the paper's mmpose files)
    num_joints: int | None = None
    input_size: tuple[int, int] | None = None
    detector: Path | None = None  # detector ONNX; with neither it nor boxes: OpenCV HOG
    boxes: Path | None = None  # COCO-format detections file
    out: Path = Path("predict_out")
    device: str = "auto"
    batch: int = 16  # crops per network call, gathered across people and frames
    detect_every: int = 1  # video: run the detector on every N-th frame, track in between
    sequence: bool = False  # a folder's images are one video's frames: tracked, written as a video
    fps: float | None = None  # frame rate of a sequence's video (None: SEQUENCE_FPS)
    show_fps: bool = False
    smooth: bool = False  # video: One-Euro filter on each track's keypoints over frames
    det_score_thr: float = DET_SCORE_THR
    det_iou_thr: float = DET_IOU_THR
    det_family: str | None = None  # None: from the detector's layout (and file name)
    track_iou_thr: float = 0.3
    kpt_thr: float = 0.3  # joints drawn above this score
    flip_test: bool = False
    threads: int | None = None
    max_frames: int | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.detector is not None and self.boxes is not None:
            raise HrnextError("pass --detector or --boxes, not both")
        check_count("--batch", self.batch)
        check_count("--detect-every", self.detect_every)
        if self.fps is not None and not (self.sequence and math.isfinite(self.fps) and self.fps > 0):
            raise HrnextError(f"--fps {self.fps} sets the frame rate of a --sequence folder's video: a positive "
                              "number, with --sequence (a video file keeps its own rate)")
        if self.max_frames is not None:
            check_count("--max-frames", self.max_frames)
        for flag, value in (("--det-score-thr", self.det_score_thr), ("--det-iou-thr", self.det_iou_thr),
                            ("--kpt-thr", self.kpt_thr), ("track_iou_thr", self.track_iou_thr)):
            check_fraction(flag, value)
        check_threads(self.threads)
        resolve_device(self.device)


@dataclass
class PredictResult:
    out: Path
    files: list[Path]
    frames: int
    people: int
    interrupted: bool
    timing: Report
    summary: dict = field(default_factory=dict)


def run_predict(config: PredictConfig) -> PredictResult:
    """Run the loop over ``config.source``; write annotated frames, results and ``summary.json``."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    # A bad source fails before anything is written.
    source = open_source(config.source, config.max_frames, sequence=config.sequence)
    # The output folder is this run's until its summary is written (a second run there is refused).
    with ExitStack() as held:
        failure = None
        try:
            if source.kind == "images" and config.detect_every > 1:
                what = "a folder of images" if Path(config.source).is_dir() else "an image"
                raise HrnextError(f"--detect-every {config.detect_every} carries boxes between a video's frames, and "
                                  f"{config.source} is {what}, "
                                  "detected image by image: leave it out, or pass --sequence if the folder holds a "
                                  "video's frames")
            if source.kind == "images" and config.smooth:
                raise HrnextError(f"--smooth filters each person's keypoints over a video's frames, and "
                                  f"{config.source} is no video: leave it out, or pass --sequence if the folder "
                                  "holds a video's frames")
            estimator = PoseEstimator(config.model, config.detector, device=device, batch=config.batch,
                                      flip_test=config.flip_test, det_score_thr=config.det_score_thr,
                                      det_iou_thr=config.det_iou_thr, det_family=config.det_family,
                                      threads=config.threads, arch=config.arch, num_joints=config.num_joints,
                                      input_size=config.input_size, option_names="cli")
            with estimator:
                boxes_file = _boxes_file(config, source)
                detector_name = boxes_file.name if boxes_file is not None else estimator.detector.name
                source_path = None if getattr(source, "camera", False) else Path(config.source)
                held.enter_context(prepare_out_dir(config.out, source_path, config.overwrite))
                if source.kind == "images":
                    output = ImagesOutput(config.out)
                else:
                    output = VideoOutput(config.out, source.label, source.fps or config.fps or SEQUENCE_FPS,
                                         (source.width, source.height), named_frames=source.kind == "sequence")
                description = estimator.network.description
                log.info("predict %s (%s%s) with %s; boxes: %s", config.source, source.kind,
                         f", {len(source)} frames" if len(source) else "", description, detector_name)
                setup_s = time.perf_counter() - started
                loop = _Loop(config, estimator, boxes_file, output, video=source.kind != "images")
                try:
                    loop.run(source)
                except Exception as exc:  # the files of the frames done are closed: the summary says the run failed
                    failure = exc
        finally:
            source.close()
        skipped = source.skipped if isinstance(source, ImageSource) else []
        if failure is None and skipped and not loop.frames and not loop.interrupted:
            failure = HrnextError(f"none of the {len(skipped)} images of {config.source} could be read (first: "
                                  f"{skipped[0]}): are they images? replace or remove them")
        ended_early = source.ended_early(loop.frames) if isinstance(source, VideoSource) and failure is None \
            and not loop.interrupted else None
        if ended_early:
            log.warning("%s", ended_early)

        # After the loop: the decoding thread joined, the network freed, the summary written.
        teardown_s = time.perf_counter() - started - setup_s - loop.wall_s
        timing = timing_report(loop.timer.seconds, loop.frames, loop.people, loop.wall_s, setup_s, teardown_s,
                               f"predict {config.source}: {description}, boxes: {detector_name}")
        files = loop.files
        summary = {"source": str(config.source), "kind": source.kind, "model": description,
                   "detector": detector_name, "device": device, "frames": loop.frames, "people": loop.people,
                   "interrupted": loop.interrupted, "decode_thread_s": round(source.decode_s, 4),
                   "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                   "timing": timing.to_dict(), "files": files, "skipped_unreadable": skipped,
                   # A sequence's frames of another size than its first, scaled into the video.
                   "rescaled_frames": getattr(loop.output, "rescaled", []),
                   "ended_early": ended_early,  # a video shorter than its header says, or null
                   # A failed run's files hold the frames before the failure; --overwrite replaces them.
                   "error": None if failure is None else str(failure)}
        summary_path = write_summary(config.out, summary)
        if failure is not None:
            raise failure
        return PredictResult(Path(config.out), [Path(config.out) / f for f in files] + [summary_path], loop.frames,
                             loop.people, loop.interrupted, timing, summary)


def _boxes_file(config: PredictConfig, source) -> BoxesFile | None:
    return None if config.boxes is None else open_boxes_file(config.boxes, config.det_score_thr, source.box_keys())


class _Loop:
    """The frame loop; every step runs inside one stage of ``timer``."""

    def __init__(self, config: PredictConfig, estimator: PoseEstimator, boxes_file: BoxesFile | None, output,
                 video: bool):
        self.config, self.estimator, self.boxes_file, self.output = config, estimator, boxes_file, output
        self.timer = StageTimer()
        self.video_poses = VideoPoses(estimator, output.fps, config.detect_every, config.smooth,
                                      config.track_iou_thr) if video else None
        self.frames = self.people = 0
        self.interrupted = False
        self.files: list[str] = []
        self.wall_s = 0.0
        self._pending: list[tuple[Frame, PersonCrops, int]] = []  # with the frame's place in the video
        self._video_index = 0  # a sequence's unreadable files are no frames: its own count, not file positions

    def run(self, source) -> None:
        self._bar = progress_bar(total=len(source) or None, desc="predict", unit="frame",
                                 disable=not self.config.progress)  # a bar on a terminal, sparse lines in a log
        frames = iter(source)
        loop_start = self._start = time.perf_counter()
        self.timer.restart()
        try:
            with _stop_requested_on_signal() as stop:
                while not stop.is_set():
                    with self.timer.stage("read"):
                        frame = next(frames, None)
                    if frame is None:
                        break
                    self._add(frame)
                    if sum(len(p.boxes) for _, p, _ in self._pending) >= self.config.batch \
                            or len(self._pending) >= self.config.batch:
                        self._flush()
                if stop.is_set():
                    self.interrupted = True
                    log.warning("interrupted: finishing the frames already read, then the files")
                self._flush()
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, still closing the files
            self.interrupted = True
        finally:
            with self.timer.stage("write"):
                try:
                    self.output.close()
                finally:  # also when closing failed: the summary lists every file this run made
                    self.files = self.output.names()
            self._bar.close()
            self.wall_s = time.perf_counter() - loop_start

    def _add(self, frame: Frame) -> None:
        def from_file() -> Boxes:
            return self.boxes_file.boxes_for(frame.image_id, frame.name, frame.image.shape)
        lookup = from_file if self.boxes_file is not None else None
        index, carried = self._video_index, False
        with self.timer.stage("detect"):
            if self.video_poses is not None:
                boxes, carried = self.video_poses.boxes(index, frame.image, lookup), self.video_poses.carried(index)
                self._video_index += 1
            else:
                boxes = lookup() if lookup is not None else self.estimator.detect(frame.image)
        with self.timer.stage("crop"):
            self._pending.append((frame, self.estimator.prepare(frame.image, boxes, keep_all=carried), index))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        poses = self.estimator.estimate([people for _, people, _ in pending], self.timer)
        if self.video_poses is not None:
            with self.timer.stage("decode"):  # track ids and smoothing, in frame order
                poses = [self.video_poses.finish(index, frame_poses)
                         for (_, _, index), frame_poses in zip(pending, poses)]
        for (frame, _, _), frame_poses in zip(pending, poses):
            with self.timer.stage("draw"):
                fps = self.frames / max(time.perf_counter() - self._start, 1e-9) if self.config.show_fps else None
                canvas = annotate(frame.image, frame_poses, self.estimator.meta, self.config.kpt_thr,
                                  f"{fps:.1f} fps" if fps is not None else None)
            with self.timer.stage("write"):
                self.output.write(frame, frame_poses, canvas)
                self.frames += 1
                self.people += len(frame_poses)
                self._bar.update(1)


@contextmanager
def _stop_requested_on_signal():
    """An event set by the first Ctrl-C or SIGTERM, so the loop ends between frames with every file
    whole (a SIGTERM raising at once could land between a frame's video and JSON writes); a second
    one stops at once as usual. Only the main thread can take signals."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum, frame):
        interrupts.arrived(signum)  # SIGTERM's exit code and name in the last line
        stop.set()
        signal.signal(signum, previous[signum])

    for signum in previous:
        signal.signal(signum, on_signal)
    try:
        with interrupts.handled_by_caller():  # the CLI's watchdog must not cut the closing of the files
            yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
