"""One timing harness for every runner: the clocks, the per-call loop and the statistics.

How a call is timed is the same for every backend: warm-up calls are run and thrown away, then
each of N calls is timed on its own; the report gives median, p90, p95, p99, mean and throughput
(images per second at the median). The clock is the host's wall clock on the CPU, and CUDA events
around the call, followed by a synchronisation, on the GPU (``torch.cuda.Event`` for PyTorch, the
engine's own stream for TensorRT). ONNX Runtime's ``run`` returns host arrays, so it is complete
when it returns and the host clock is its true latency on either device.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from hrnext_trt.contract import INPUT_NAME
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners.base import Runner


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of ``iters`` timed calls on batches of ``batch`` images, in milliseconds."""

    batch: int
    iters: int
    warmup: int
    clock: str  # "host" or "cuda-events"
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    cpu_median_ms: float | None  # process CPU time per call (all threads): steadier than wall time on a busy machine

    @property
    def images_per_s(self) -> float:
        return 1000.0 * self.batch / self.median_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "images_per_s": self.images_per_s}


def summarize(times_ms: list[float], batch: int, warmup: int, clock: str,
              cpu_times_ms: list[float] | None = None) -> LatencyStats:
    t = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(t, [50, 90, 95, 99])
    return LatencyStats(batch=batch, iters=len(t), warmup=warmup, clock=clock, median_ms=float(p50),
                        p90_ms=float(p90), p95_ms=float(p95), p99_ms=float(p99), mean_ms=float(t.mean()),
                        min_ms=float(t.min()), max_ms=float(t.max()),
                        cpu_median_ms=float(np.median(cpu_times_ms)) if cpu_times_ms else None)


class HostClock:
    name = "host"

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        return (time.perf_counter() - self._t0) * 1000.0


class TorchCudaClock:
    """CUDA events on torch's current stream; ``stop`` waits for the end event."""

    name = "cuda-events"

    def __init__(self):
        import torch

        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


class StreamClock:
    """CUDA events on a runner's own pycuda stream (TensorRT)."""

    name = "cuda-events"

    def __init__(self, stream):
        import pycuda.driver as cuda

        self._stream = stream
        self._start, self._end = cuda.Event(), cuda.Event()

    def start(self) -> None:
        self._start.record(self._stream)

    def stop(self) -> float:
        self._end.record(self._stream)
        self._end.synchronize()
        return float(self._start.time_till(self._end))


def clock_note(device: str) -> str:
    """What a table's model-only latency measured, in words, for its footnote."""
    if device != "cuda":
        return "host wall clock"
    return ("GPU: CUDA events around each call for PyTorch and TensorRT (copy of the crops from page-locked host "
            "memory, the model, copy back), host clock for ONNX Runtime (its run returns host arrays)")


def clock_for(runner: Runner):
    """The clock that gives ``runner``'s true latency (see the module docstring)."""
    if runner.device == "cuda" and runner.cuda_stream is not None:
        return StreamClock(runner.cuda_stream)
    if runner.device == "cuda" and runner.backend == "pytorch":
        return TorchCudaClock()
    return HostClock()


def time_fn(fn: Callable[[], object], *, batch: int, iters: int, warmup: int, clock=None) -> LatencyStats:
    """Time ``fn()``: ``warmup`` untimed calls, then ``iters`` calls timed one by one."""
    if iters < 1 or warmup < 0:
        raise HrnextError(f"--iters must be >= 1 and --warmup >= 0 (got {iters} and {warmup})")
    clock = clock or HostClock()
    for _ in range(warmup):
        fn()
    times, cpu_times = [], []
    for _ in range(iters):
        cpu_start = time.process_time()
        clock.start()
        fn()
        times.append(clock.stop())
        cpu_times.append((time.process_time() - cpu_start) * 1000.0)
    return summarize(times, batch, warmup, clock.name, cpu_times)


def time_runner(runner: Runner, images: np.ndarray, *, iters: int, warmup: int) -> LatencyStats:
    """Model-only latency: ``runner.infer`` on a fixed batch of preprocessed crops."""
    feed = {INPUT_NAME: images}
    return time_fn(lambda: runner.infer(feed), batch=len(images), iters=iters, warmup=warmup,
                   clock=clock_for(runner))
