"""Reports: the printed table, and JSON / CSV / Markdown files that parse back to the same rows."""

from __future__ import annotations

import csv
import json

import pytest

from hrnext_trt.reports import Column, Report, accuracy_latency_png

ROWS = [
    {"backend": "pytorch", "precision": "fp32", "AP": 0.7123, "p50_ms": 12.5, "status": "ok", "notes": ""},
    {"backend": "onnxruntime", "precision": "int8", "AP": 0.7001, "p50_ms": 30.25, "status": "ok",
     "notes": "CPU: accuracy check only"},
    {"backend": "tensorrt", "precision": "fp16", "AP": None, "p50_ms": None, "status": "unavailable",
     "notes": "tensorrt not installed (pip install 'hrnext-trt[trt]')"},
]
COLUMNS = [Column("backend", "backend"), Column("precision", "prec"), Column("AP", "AP", ".3f"),
           Column("p50_ms", "p50 ms", ".2f"), Column("status", "status"), Column("notes", "notes")]


def _report() -> Report:
    return Report("comparison", COLUMNS, ROWS, footnotes=["latency: model only"], meta={"batch": 8})


def test_table_shows_every_row_with_formatted_numbers_and_dashes():
    text = _report().table()
    lines = text.splitlines()
    assert lines[0] == "comparison"
    assert any(line.startswith("pytorch") and "0.712" in line and "12.50" in line for line in lines)
    trt = next(line for line in lines if line.startswith("tensorrt"))
    assert " - " in trt and "pip install 'hrnext-trt[trt]'" in trt
    assert lines[-1] == "* latency: model only"


def test_json_csv_markdown_parse_back(tmp_path):
    paths = _report().write_all(tmp_path, "cmp")
    data = json.loads(paths["json"].read_text())
    assert data["rows"] == ROWS and data["meta"] == {"batch": 8} and data["footnotes"] == ["latency: model only"]

    with paths["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [r["backend"] for r in rows] == ["pytorch", "onnxruntime", "tensorrt"]
    assert float(rows[1]["AP"]) == 0.7001 and rows[2]["AP"] == ""

    md = paths["markdown"].read_text().splitlines()
    table = [line for line in md if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == [c.header for c in COLUMNS]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [r[0] for r in body] == ["pytorch", "onnxruntime", "tensorrt"]
    assert body[0][2] == "0.712" and body[2][2] == "-"


def test_plot_writes_a_png():
    png = accuracy_latency_png(ROWS, x="p50_ms", y="AP", label="precision", x_label="ms", y_label="AP", title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_labels_never_overlap_even_at_equal_accuracy():
    import itertools

    import matplotlib.pyplot as plt

    from hrnext_trt.reports import accuracy_latency_figure

    # The demo's rows: four backends within 0.002 AP of each other, two exactly equal.
    rows = [{"label": "pytorch fp32", "AP": 0.521, "p50_ms": 122.0},
            {"label": "onnxruntime fp32", "AP": 0.521, "p50_ms": 87.7},
            {"label": "onnxruntime fp16 *", "AP": 0.520, "p50_ms": 98.4},
            {"label": "onnxruntime int8 *", "AP": 0.522, "p50_ms": 149.4},
            {"label": "tensorrt fp16", "AP": 0.2, "p50_ms": 3.0},
            {"label": "tensorrt -", "AP": None, "p50_ms": None}]
    fig = accuracy_latency_figure(rows, x="p50_ms", y="AP", label="label", x_label="ms", y_label="AP", title="t",
                                  caption="* CPU: accuracy check only")
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() in {r["label"] for r in rows}]
    assert sorted(t.get_text() for t in labels) == sorted(r["label"] for r in rows if r["AP"] is not None)
    boxes = [_text_box(t, renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    axes_box = ax.get_window_extent(renderer)
    for box in boxes:
        assert box.x0 > axes_box.x1  # beside the axes, over no point
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    plt.close(fig)


def test_plot_labels_of_many_equal_rows_stay_apart():
    import itertools

    import matplotlib.pyplot as plt

    from hrnext_trt.reports import accuracy_latency_figure

    rows = [{"label": f"backend {i}", "AP": 0.5, "p50_ms": float(i)} for i in range(25)]
    fig = accuracy_latency_figure(rows, x="p50_ms", y="AP", label="label", x_label="ms", y_label="AP", title="t")
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    boxes = [_text_box(t, renderer) for t in fig.axes[0].texts]
    assert len(boxes) == 25
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for box in boxes:
        assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    plt.close(fig)


def _text_box(label, renderer):
    """A label's text alone (an annotation's own extent also spans its line to the point)."""
    from matplotlib.text import Text

    return Text.get_window_extent(label, renderer)


def test_values_that_are_no_number_are_missing_everywhere(tmp_path):
    """NaN and infinity (a metric with nothing to score) print as "-", are JSON null (a bare NaN is no
    JSON: strict parsers refuse the file) and empty CSV cells; a chart leaves such a point out."""
    import matplotlib.pyplot as plt

    from hrnext_trt.reports import accuracy_latency_figure

    rows = [{"backend": "pytorch", "precision": "fp32", "AP": float("nan"), "p50_ms": 12.5, "status": "ok",
             "notes": "", "latency": {"p99_ms": float("inf")}},
            {"backend": "onnxruntime", "precision": "fp32", "AP": 0.5, "p50_ms": float("inf"), "status": "ok",
             "notes": ""},
            {"backend": "onnxruntime", "precision": "int8", "AP": 0.0, "p50_ms": 30.0, "status": "ok", "notes": ""}]
    report = Report("comparison", COLUMNS, rows)
    assert [line.split()[2] for line in report.table().splitlines()[4:7]] == ["-", "0.500", "0.000"]
    paths = report.write_all(tmp_path, "cmp")

    def refuse(constant):
        raise ValueError(f"bare {constant} in the JSON")

    data = json.loads(paths["json"].read_text(), parse_constant=refuse)
    assert data["rows"][0]["AP"] is None and data["rows"][0]["latency"] == {"p99_ms": None}
    assert data["rows"][1]["p50_ms"] is None
    with paths["csv"].open() as f:
        assert next(csv.DictReader(f))["AP"] == ""
    # Only the one row with both numbers is drawn (a NaN point was a matplotlib StopIteration), and
    # accuracies of 0 put no negative values on the axis.
    fig = accuracy_latency_figure([{**r, "label": r["precision"]} for r in rows], x="p50_ms", y="AP", label="label",
                                  x_label="ms", y_label="AP", title="t")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert len(ax.collections) == 1 and ax.get_ylim()[0] == 0.0
    plt.close(fig)


def test_files_written_together_are_all_or_none(tmp_path):
    """A failure on the last file (here: its folder is a file; in real runs a full disk) leaves every
    earlier one as it was and no temporary file (was: new reports beside the old plot)."""
    from hrnext_trt.errors import HrnextError
    from hrnext_trt.reports import write_files

    (tmp_path / "report.json").write_text("old")
    (tmp_path / "blocked").write_text("a file where a folder would be")
    with pytest.raises(HrnextError, match=r"cannot write .*blocked.*plot\.png: "):
        write_files({tmp_path / "report.json": b"new", tmp_path / "blocked" / "plot.png": b"png"})
    assert (tmp_path / "report.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "report.json"]
    write_files({tmp_path / "report.json": b"new", tmp_path / "plot.png": b"png"})
    assert (tmp_path / "report.json").read_text() == "new" and (tmp_path / "plot.png").read_bytes() == b"png"
