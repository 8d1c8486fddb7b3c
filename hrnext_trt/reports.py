"""Comparison reports: one table, printed and saved as JSON, CSV and Markdown, plus a plot.

A ``Report`` is a list of rows, the columns to show (key, header, number format), footnotes and
free-form metadata. A row is a flat dict or a typed record with ``to_dict()`` (the comparisons'
``Row``), serialised here. Rows keep every value (a column may show only some); a missing value
prints as "-", so a backend that did not run is still a row with its reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hrnext_trt.errors import HrnextError


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = ""  # format spec for numbers, e.g. ".3f"; strings print as they are

    def cell(self, row: dict) -> str:
        value = row.get(self.key)
        if value is None or value == "":
            return "-"
        if isinstance(value, float) and self.fmt:
            return format(value, self.fmt)
        return str(value)


@dataclass
class Report:
    title: str
    columns: list[Column]
    rows: list  # dicts, or records with to_dict()
    footnotes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def row_dicts(self) -> list[dict]:
        """The rows as the flat dicts every format writes."""
        return [row.to_dict() if hasattr(row, "to_dict") else row for row in self.rows]

    def _cells(self) -> list[list[str]]:
        return [[c.cell(row) for c in self.columns] for row in self.row_dicts()]

    def table(self) -> str:
        """Aligned plain-text table for the terminal (numbers right-aligned)."""
        headers = [c.header for c in self.columns]
        cells = self._cells()
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

        def line(values):
            return "  ".join(v.rjust(w) if c.fmt else v.ljust(w)
                             for v, w, c in zip(values, widths, self.columns)).rstrip()

        rule = "-" * len(line(["-" * w for w in widths]))
        out = [self.title, rule, line(headers), rule] + [line(r) for r in cells] + [rule]
        out += [f"* {note}" for note in self.footnotes]
        return "\n".join(out)

    def markdown(self) -> str:
        def line(values):
            return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

        out = [f"## {self.title}", "", line([c.header for c in self.columns]),
               line(["---:" if c.fmt else "---" for c in self.columns])]
        out += [line(r) for r in self._cells()]
        if self.footnotes:
            out += [""] + [f"- {note}" for note in self.footnotes]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict:
        return {"title": self.title, "meta": self.meta, "rows": self.row_dicts(), "footnotes": self.footnotes}

    def write_json(self, path: str | Path) -> Path:
        return _write(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    def write_markdown(self, path: str | Path) -> Path:
        return _write(path, self.markdown())

    def write_csv(self, path: str | Path) -> Path:
        """Every key of every row (not only the shown columns), one row per line."""
        rows = self.row_dicts()
        keys = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in keys})
        return _write(path, text.getvalue())

    def write_all(self, out_dir: str | Path, stem: str) -> dict[str, Path]:
        """``stem.json``, ``stem.csv`` and ``stem.md`` in ``out_dir``."""
        out_dir = Path(out_dir)
        return {"json": self.write_json(out_dir / f"{stem}.json"),
                "csv": self.write_csv(out_dir / f"{stem}.csv"),
                "markdown": self.write_markdown(out_dir / f"{stem}.md")}


def _csv_value(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _write(path: str | Path, text: str) -> Path:
    return write_atomic(path, text.encode("utf-8"))


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``path`` whole or not at all (a temporary sibling renamed over it): an interrupted run
    never leaves a half-written report that a later command would read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_writable(path: str | Path | None, option: str, folder: bool) -> None:
    """Fail in one line, before any work, when ``path`` (a folder, or a file) cannot be written."""
    if path is None:
        return
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise HrnextError(f"{option} {path} is a file, not a folder: choose a folder")
    if not folder and path.is_dir():
        raise HrnextError(f"{option} {path} is a folder: give a file name, e.g. {path / 'report.json'}")
    directory = path if folder else path.parent
    existing = next((p for p in (directory, *directory.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise HrnextError(f"{option} {path}: {existing} is a file, not a folder: choose another place")
    if not os.access(existing, os.W_OK | os.X_OK) or (not folder and path.exists() and not os.access(path, os.W_OK)):
        raise HrnextError(f"{option} {path} is not writable (permission denied in {existing}): choose another place")


def plot_accuracy_latency(rows: list[dict], path: str | Path, *, x: str, y: str, label: str,
                          x_label: str, y_label: str, title: str, caption: str = "") -> Path:
    """Scatter of ``y`` against ``x`` (one labelled point per row that has both), saved as a PNG;
    ``caption`` is printed under the axes."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    points = [r for r in rows if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for row in points:
        ax.scatter(row[x], row[y], s=40)
        ax.annotate(str(row[label]), (row[x], row[y]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.2, y=0.15)  # room for the labels right of the points
    if caption:
        fig.text(0.01, 0.01, caption, fontsize=7, ha="left", va="bottom", wrap=True)
    if not points:
        ax.text(0.5, 0.5, "no backend produced both numbers", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout(rect=(0, 0.05 if caption else 0, 1, 1))
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    return write_atomic(path, image.getvalue())
