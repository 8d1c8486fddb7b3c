"""Wall-clock time per stage of the frame loop, and the summary table of it.

Every step of the loop runs inside one stage and the stages are laid end to end, so they add up
to the loop's wall clock (the test checks it, with the set-up, against a clock outside). "read / decode" is the time the loop waits for its next
frame: a video's background decoding thread overlaps with the other stages and only shows here
when it cannot keep up.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from hrnext_trt.reports import Column, Report

STAGES = ("read", "detect", "crop", "pose", "decode", "draw", "write")
STAGE_LABELS = {"read": "read / decode", "detect": "detect + track", "crop": "crop", "pose": "pose network",
                "decode": "decode + NMS", "draw": "draw", "write": "write"}


class StageTimer:
    """Stages laid end to end: a stage starts where the previous one ended (the loop's own
    bookkeeping in between is charged to the next stage), so no time falls between them."""

    def __init__(self):
        self.seconds = {name: 0.0 for name in STAGES}
        self._last = time.perf_counter()

    def restart(self) -> None:
        self._last = time.perf_counter()

    @contextmanager
    def stage(self, name: str):
        try:
            yield
        finally:
            now = time.perf_counter()
            self.seconds[name] += now - self._last
            self._last = now

    def total(self) -> float:
        return sum(self.seconds.values())


def timing_report(seconds: dict[str, float], frames: int, people: int, wall_s: float, setup_s: float,
                  teardown_s: float, title: str) -> Report:
    """Per-stage ms per frame and share of the loop, then frames/s and people/s of the whole loop."""
    rows = [{"stage": STAGE_LABELS[name], "ms_per_frame": 1000 * s / max(frames, 1),
             "share": 100 * s / wall_s if wall_s > 0 else 0.0, "total_s": s} for name, s in seconds.items()]
    rows.append({"stage": "all (loop wall clock)", "ms_per_frame": 1000 * wall_s / max(frames, 1),
                 "share": 100.0, "total_s": wall_s})
    fps = frames / wall_s if wall_s > 0 else 0.0
    pps = people / wall_s if wall_s > 0 else 0.0
    footnotes = [f"{frames} frames, {people} people: {fps:.2f} frames/s, {pps:.2f} people/s end to end; "
                 f"outside the loop: set-up (loading the models, opening the source) {setup_s:.2f} s, "
                 f"closing {teardown_s:.2f} s"]
    columns = [Column("stage", "stage"), Column("ms_per_frame", "ms / frame", ".1f"), Column("share", "share %", ".1f"),
               Column("total_s", "total s", ".2f")]
    return Report(title, columns, rows, footnotes,
                  {"frames": frames, "people": people, "frames_per_s": fps, "people_per_s": pps, "wall_s": wall_s,
                   "setup_s": setup_s, "teardown_s": teardown_s})
