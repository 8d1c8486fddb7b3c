"""Wall-clock time per stage of the frame loop, and the summary table of it.

Every step of the loop runs inside one stage, so the stages add up to the loop's wall clock
(the test checks it within 10 %). "read / decode" is the time the loop waits for its next
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
    def __init__(self):
        self.seconds = {name: 0.0 for name in STAGES}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def total(self) -> float:
        return sum(self.seconds.values())


def timing_report(seconds: dict[str, float], frames: int, people: int, wall_s: float, setup_s: float,
                  title: str) -> Report:
    """Per-stage ms per frame and share of the loop, then frames/s and people/s of the whole loop."""
    rows = [{"stage": STAGE_LABELS[name], "ms_per_frame": 1000 * s / max(frames, 1),
             "share": 100 * s / wall_s if wall_s > 0 else 0.0, "total_s": s} for name, s in seconds.items()]
    rows.append({"stage": "all (loop wall clock)", "ms_per_frame": 1000 * wall_s / max(frames, 1),
                 "share": 100.0, "total_s": wall_s})
    fps = frames / wall_s if wall_s > 0 else 0.0
    pps = people / wall_s if wall_s > 0 else 0.0
    footnotes = [f"{frames} frames, {people} people: {fps:.2f} frames/s, {pps:.2f} people/s end to end; "
                 f"set-up (loading the models, opening the source) {setup_s:.1f} s, not in the loop"]
    columns = [Column("stage", "stage"), Column("ms_per_frame", "ms / frame", ".1f"), Column("share", "share %", ".1f"),
               Column("total_s", "total s", ".2f")]
    return Report(title, columns, rows, footnotes,
                  {"frames": frames, "people": people, "frames_per_s": fps, "people_per_s": pps, "wall_s": wall_s,
                   "setup_s": setup_s})
