"""Where frames come from: an image, a folder of images, a video file or a camera.

``open_source(spec)`` picks the kind from the argument (a number that names no file or folder is
a camera index, a folder is a folder of images, a file with an image suffix is one image, any
other file a video) and checks it opens, so a bad source fails before any output is written.
Folders are read in name order with numbers compared as numbers (frame2 before frame10). With
``sequence`` a folder's images are the frames of one video (PoseTrack's sequences, frames
extracted with ffmpeg): read like a folder, tracked and written like a video. Videos and cameras
are decoded by a background thread a few frames ahead of the consumer (OpenCV releases the GIL).
"""

from __future__ import annotations

import logging
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.data.files import read_image
from hrnext_trt.errors import HrnextError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")  # for hints only
_QUEUE_FRAMES = 8  # decoded frames held ahead of the consumer
_END = object()


@dataclass
class Frame:
    index: int  # 0-based position in the source
    image: np.ndarray  # BGR uint8 (H, W, 3)
    name: str  # file name for images, "frame N" for videos
    image_id: int  # the id results carry: the numeric file stem (COCO, CrowdPose names), else image_ids' number


class ImageSource:
    """One image (read at once, so it fails before any output) or a folder's images, read in turn.
    In a folder an unreadable file is skipped with a warning and listed in ``skipped``: one bad file
    must not cost the poses of the thousand others. A ``sequence`` (kind "sequence") is a folder
    whose images are a video's frames: its first frame, read at once, sets the video's size."""

    fps = None

    def __init__(self, paths: list[Path], label: str, first: np.ndarray | None = None, sequence: bool = False):
        self.paths, self.label = paths, label
        self.kind = "sequence" if sequence else "images"
        self._first = first  # the first image, already read by open_source
        if first is not None:
            self.height, self.width = first.shape[:2]
        self.skipped: list[str] = []  # folder images that could not be read, by file name
        self.image_ids = image_ids(paths)
        self.decode_s = 0.0

    def __len__(self) -> int:
        return len(self.paths)

    def box_keys(self) -> list:
        """What a detections file's entries may name these images by (``BoxesFile``)."""
        return [p.name for p in self.paths] + list(self.image_ids)

    def __iter__(self):
        for i, path in enumerate(self.paths):
            started = time.perf_counter()
            try:
                image = self._first if i == 0 and self._first is not None else read_image(path)
            except HrnextError as exc:  # only a folder gets here: a single image was read by open_source
                log.warning("skipped: %s", exc)
                self.skipped.append(path.name)
                continue
            finally:
                self.decode_s += time.perf_counter() - started
            yield Frame(i, image, path.name, self.image_ids[i])

    def close(self) -> None:
        pass


class VideoSource:
    """A video file or a camera, decoded by a background thread."""

    kind = "video"

    def __init__(self, capture_arg: str | int, label: str, max_frames: int | None = None):
        self.label = label
        self._capture = open_capture(capture_arg)
        self.camera = camera = isinstance(capture_arg, int)
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise HrnextError(f"{'camera ' if camera else 'video '}{capture_arg} gives no frame: the file is empty "
                              "or corrupt, or the camera delivers nothing")
        self.height, self.width = first.shape[:2]
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else 30.0
        if self.fps != fps and not camera:  # a container's placeholder (0, 90000): said, not silently taken
            log.warning("video %s states %g frames/s: taken as 30 for its frame times, the written video and "
                        "--smooth", capture_arg, fps)
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not camera else 0
        self.total = self._stated = count if count > 0 else None
        if max_frames is not None:
            self.total = min(self.total, max_frames) if self.total else max_frames
        self.max_frames = max_frames
        self.decode_s = 0.0  # the decoding thread's own time (overlapped with the main thread's work)
        self._queue: queue.Queue = queue.Queue(_QUEUE_FRAMES)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._decode, args=(first,), name="decode", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return self.total or 0

    def box_keys(self) -> range:
        # Frame indices; any where the container gives no frame count (a raw stream, a camera).
        return range(self.total) if self.total else range(sys.maxsize)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self, first: np.ndarray) -> None:
        try:
            frame, index = first, 0
            while frame is not None and (self.max_frames is None or index < self.max_frames):
                if not self._put(frame):
                    return
                index += 1
                started = time.perf_counter()
                ok, frame = self._capture.read()
                self.decode_s += time.perf_counter() - started
                frame = frame if ok else None
        except BaseException as exc:  # handed to the consumer, which raises it in the main thread
            self._error = exc
        finally:
            self._put(_END)

    def __iter__(self):
        index = 0
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield Frame(index, item, f"frame {index}", index)
            index += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._capture.release()

    def ended_early(self, frames: int) -> str | None:
        """Why a video file that gave all its ``frames`` is shorter than its header says, or None.
        Containers without an index only estimate their count: a frame or two (1 %) short is normal."""
        stated = self._stated
        if stated is None or (self.max_frames is not None and self.max_frames < stated) \
                or frames >= stated - max(2, stated // 100):
            return None
        return (f"video {self.label} ended after {frames} of the {stated} frames its header states: the file is "
                "truncated or damaged; the frames it gave are in the outputs")


def open_capture(capture_arg: str | int, hint: str = "") -> cv2.VideoCapture:
    """An opened OpenCV capture of a video file or (an int) a camera; ``hint`` ends the error's line."""
    capture = cv2.VideoCapture(capture_arg)
    if not capture.isOpened():
        capture.release()
        if isinstance(capture_arg, int):
            raise HrnextError(f"camera {capture_arg} cannot be opened: is it connected, free and readable by "
                              "this user (/dev/video*)?")
        raise HrnextError(f"cannot open video {capture_arg}: not a video OpenCV can decode (or not a video){hint}")
    return capture


def folder_images(folder: Path, subfolder_note: str = "") -> list[Path]:
    """A folder's images, in name order with numbers compared as numbers; none is an error that says
    what to pass instead (``subfolder_note`` adds to the hint for a folder of image folders)."""
    paths = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=_natural_order)
    if not paths:
        raise HrnextError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
                          f"{_what_to_pass(folder, subfolder_note)}")
    return paths


def image_ids(paths: list[Path]) -> list[int]:
    """The ids a folder's images carry (results, detections files): each image's numeric file stem
    (COCO, CrowdPose names: 000000000785.jpg is 785), the first of its number where two stems share
    one; the others are numbered on from the largest such id, in the folder's order (from 0 in a
    folder without numeric names), so a stray cover.jpg renumbers no other image."""
    numbers: list[int | None] = []
    seen: set[int] = set()
    for path in paths:
        number = int(path.stem) if path.stem.isdigit() else None
        numbers.append(number if number not in seen else None)
        if number is not None:
            seen.add(number)
    next_id = max((n for n in numbers if n is not None), default=-1) + 1
    ids = []
    for number in numbers:
        if number is None:
            number, next_id = next_id, next_id + 1
        ids.append(number)
    return ids


def _natural_order(path: Path) -> list:
    """Numbers in names compare as numbers: ffmpeg's default ``frame%d.jpg`` gives frame2 before frame10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path.name) if part]


def _what_to_pass(folder: Path, subfolder_note: str) -> str:
    """For a folder without images: the video in it to pass, else the subfolder of images (a dataset's
    sequences, images/val/<sequence>/000001.jpg), else a folder that holds some."""
    videos = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if videos:
        return (f"; it holds {len(videos)} video{'s' if len(videos) > 1 else ''} ({', '.join(videos[:3])}"
                f"{', ...' if len(videos) > 3 else ''}): pass a video itself, e.g. {folder / videos[0]}")
    subfolders = sorted(d for d in folder.iterdir() if d.is_dir()
                        and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file()))
    if subfolders:
        return (f"; {len(subfolders)} of its subfolders {'hold' if len(subfolders) > 1 else 'holds'} images: pass "
                f"one, e.g. {subfolders[0]}{subfolder_note}")
    return ": pass a folder that holds images"


def open_source(spec: str | Path, max_frames: int | None = None, sequence: bool = False) -> ImageSource | VideoSource:
    """The frames of ``spec``: a camera index, a folder of images (``sequence``: a video's frames),
    an image or a video file."""
    text = str(spec)
    path = Path(text)
    if sequence and not path.is_dir():
        raise HrnextError(f"--sequence reads a folder of a video's frames, and {text} is "
                          f"{'not found' if not text.isdigit() and not path.exists() else 'no folder'}: "
                          "pass the folder, or leave --sequence out for a video, an image or a camera")
    if text.isdigit() and not path.exists():  # a folder named 2023 is a folder
        return VideoSource(int(text), f"camera{text}", max_frames)
    if not path.exists():
        raise HrnextError(f"source {path} not found: give an image, a folder of images, a video or a camera index")
    if path.is_dir():
        paths = folder_images(path, " (one folder per run, as the outputs are named by file; with --sequence if "
                                    "its images are a video's frames)")[:max_frames]
        if sequence:
            try:
                first = read_image(paths[0])
            except HrnextError as exc:
                raise HrnextError(f"the first frame of the sequence {path} sets the video's size and cannot be "
                                  f"read: {exc}") from None
            return ImageSource(paths, path.resolve().name or "frames", first=first, sequence=True)
        return ImageSource(paths, path.resolve().name or "images")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        # Read now: an unreadable image fails before any output is written.
        return ImageSource([path], path.stem, first=read_image(path))
    return VideoSource(str(path), path.stem, max_frames)
