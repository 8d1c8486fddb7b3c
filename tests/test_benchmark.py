"""The timing harness: warm-up excluded, N timed calls, ordered statistics, the right clock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.runners.timing import HostClock, clock_for, summarize, time_fn, time_runner
from hrnext_trt.cli import main
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner
from tests.test_runners import H, W, write_conv_onnx


def test_summary_statistics_of_known_times():
    stats = summarize([float(t) for t in range(1, 101)], batch=4, warmup=2, clock="host")
    assert stats.iters == 100 and stats.median_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1) and stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5) and (stats.min_ms, stats.max_ms) == (1.0, 100.0)
    assert stats.images_per_s == pytest.approx(4 * 1000 / 50.5)
    assert stats.to_dict()["images_per_s"] == stats.images_per_s


def test_warmup_calls_are_run_but_not_timed():
    calls = []
    stats = time_fn(lambda: calls.append(1), batch=1, iters=7, warmup=3)
    assert len(calls) == 10 and stats.iters == 7 and stats.warmup == 3 and stats.clock == "host"
    assert 0 <= stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
    with pytest.raises(HrnextError, match="--iters"):
        time_fn(lambda: None, batch=1, iters=0, warmup=0)


def test_runner_is_timed_on_the_host_clock_on_cpu(tmp_path):
    path = write_conv_onnx(tmp_path / "model.onnx", np.ones((3, 3, 4, 4), np.float32))
    with OnnxRuntimeRunner(path, "fp32", threads=1) as runner:
        assert isinstance(clock_for(runner), HostClock)
        stats = time_runner(runner, np.zeros((5, 3, H, W), np.float32), iters=4, warmup=1)
    assert (stats.batch, stats.iters, stats.warmup) == (5, 4, 1) and stats.median_ms > 0


def test_bench_cli_times_every_backend_and_batch_size(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "hrnext_tiny", "--input-size", "64x64", "--batch", "1,3",
                                       "--iters", "2", "--warmup", "1", "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {(r["backend"], r["precision"], r["batch"]): r for r in data["rows"]}
    # Without --engines the arch is exported to a temporary FP32 ONNX, so ONNX Runtime is always compared.
    assert list(rows) == [("pytorch", "fp32", 1), ("pytorch", "fp32", 3), ("onnxruntime", "fp32", 1),
                          ("onnxruntime", "fp32", 3), ("tensorrt", "-", None)]
    for (backend, _, batch), row in rows.items():
        if backend == "tensorrt":
            assert row["status"] == "unavailable" and row["notes"]
            continue
        assert row["status"] == "ok" and row["device"] == "cpu"
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s", "e2e_p50_ms", "e2e_images_per_s",
                    "speedup", "e2e_speedup"):
            assert row[key] > 0, key
        assert row["images_per_s"] == pytest.approx(1000 * batch / row["p50_ms"])
    assert rows[("pytorch", "fp32", 3)]["speedup"] == 1.0
    assert data["meta"]["input_size"] == [64, 64] and data["meta"]["batches"] == [1, 3]

    printed = result.stdout.splitlines()
    assert printed[0] == "bench: hrnext_tiny 64x64 on cpu"
    # The temporary export's summary is shown, without a trt-eval command on a folder deleted by then.
    assert "bench: exporting hrnext_tiny.pth to a temporary folder" in result.stderr
    assert "model.onnx" in result.stderr and "trt-eval" not in result.output
    assert sum(line.startswith(("pytorch ", "onnxruntime ", "tensorrt ")) for line in printed) == 5


def test_bench_input_errors_are_one_line(tmp_path):
    for args, expected in ((["hrnext_huge"], "neither a checkpoint file nor an arch"),
                           (["hrnext_tiny", "--batch", "1,x"], "--batch '1,x'"),
                           (["hrnext_tiny", "--batch", "2,1,2"],
                            "--batch 2,1,2 names batch 2 more than once: give each size once"),
                           (["hrnext_tiny", "--engines", str(tmp_path / "none")], "not found"),
                           (["hrnext_tiny", "--backends", "pytorch,tensorrtx"], "unknown backend 'tensorrtx'")):
        result = CliRunner().invoke(main, ["bench", *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
