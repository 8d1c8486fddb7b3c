"""Comparison reports: one table, printed and saved as JSON, CSV and Markdown, plus a plot.

A ``Report`` is a list of rows, the columns to show (key, header, number format), footnotes and
free-form metadata. A row is a flat dict or a typed record with ``to_dict()`` (the comparisons'
``Row``), serialised here. Rows keep every value (a column may show only some); a missing value
prints as "-", so a backend that did not run is still a row with its reason. A value that is no
number (NaN, infinity: a metric with nothing to score) is missing: "-", JSON null, an empty CSV
cell (a bare NaN is not JSON, and strict parsers refuse the file).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from hrnext_trt.errors import HrnextError, write_error
from hrnext_trt.folder_lock import FolderLock, Holder, acquire


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
        """The rows as the flat dicts every format writes, values that are no number as None."""
        return [json_safe(row.to_dict() if hasattr(row, "to_dict") else row) for row in self.rows]

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

    def json_text(self) -> str:
        return json.dumps(json_safe(self.to_dict()), indent=2, default=str, allow_nan=False) + "\n"

    def csv_text(self) -> str:
        """Every key of every row (not only the shown columns), one row per line."""
        rows = self.row_dicts()
        keys = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in keys})
        return text.getvalue()

    def write_json(self, path: str | Path) -> Path:
        return write_atomic(path, self.json_text().encode("utf-8"))

    def files(self, out_dir: str | Path, stem: str) -> dict[str, tuple[Path, bytes]]:
        """``stem.json``, ``stem.csv`` and ``stem.md`` in ``out_dir``, by kind, as (path, content)."""
        out_dir = Path(out_dir)
        return {"json": (out_dir / f"{stem}.json", self.json_text().encode("utf-8")),
                "csv": (out_dir / f"{stem}.csv", self.csv_text().encode("utf-8")),
                "markdown": (out_dir / f"{stem}.md", self.markdown().encode("utf-8"))}

    def write_all(self, out_dir: str | Path, stem: str) -> dict[str, Path]:
        """:meth:`files` written together (all or none)."""
        files = self.files(out_dir, stem)
        write_files(dict(files.values()))
        return {kind: path for kind, (path, _) in files.items()}


def json_safe(value):
    """``value`` (dicts, lists, numbers) with every NaN and infinity as None: valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def is_number(value) -> bool:
    """A finite int or float (not a bool): what a chart can place."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _csv_value(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``path`` whole or not at all (a temporary sibling renamed over it): an interrupted run
    never leaves a half-written report that a later command would read."""
    path = Path(path)
    write_files({path: data})
    return path


def write_files(files: dict[Path, bytes]) -> None:
    """Write every file or none: each goes to a temporary sibling first, and only when all are
    written are they renamed over their names; a failure (a full disk) or an interruption before
    that leaves the previous files as they were, never old and new ones mixed."""
    staged: list[tuple[Path, Path]] = []
    current = None
    try:
        for path, data in files.items():
            current = Path(path)
            tmp = current.with_name(f".{current.name}.{os.getpid()}.tmp")
            current.parent.mkdir(parents=True, exist_ok=True)
            staged.append((tmp, current))
            tmp.write_bytes(data)
        for tmp, current in staged:
            os.replace(tmp, current)
    except OSError as exc:  # also where permissions say yes and the file system no (/proc, read-only mounts)
        raise HrnextError(write_error(current, exc)) from None
    finally:
        for tmp, _ in staged:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def check_writable(path: str | Path | None, option: str, folder: bool, example: str = "report.json") -> None:
    """Fail in one line, before any work, when ``path`` (a folder, or a file) cannot be written;
    ``example`` names a file in the hint for a folder given where a file belongs."""
    if path is None:
        return
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise HrnextError(f"{option} {path} is a file, not a folder: choose a folder")
    if not folder and path.is_dir():
        raise HrnextError(f"{option} {path} is a folder: give a file name, e.g. {path / example}")
    directory = path if folder else path.parent
    existing = next((p for p in (directory, *directory.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise HrnextError(f"{option} {path}: {existing} is a file, not a folder: choose another place")
    if not os.access(existing, os.W_OK | os.X_OK) or (not folder and path.exists() and not os.access(path, os.W_OK)):
        raise HrnextError(f"{option} {path} is not writable (permission denied in {existing}): choose another place")


# The file each command's output folder is known by (export-engine's manifest, trt-eval's report,
# predict's and visualize's listings, a training run's log and lock; tests/test_project.py holds them
# equal to the modules' own names): another command writing there would mix its files in, and the
# folder's own command would then refuse its folder.
OUTPUT_MARKS = (("manifest.json", "export-engine"), ("trt_eval.json", "trt-eval"), ("summary.json", "predict"),
                ("visualize.json", "visualize"), ("log.jsonl", "train"), ("train.lock", "train"))


def check_not_another_commands(folder: str | Path, option: str, command: str) -> None:
    """One line when ``folder`` is the output folder of a command other than ``command``."""
    folder = Path(folder)
    for mark, owner in OUTPUT_MARKS:
        if owner != command and (folder / mark).is_file():
            article = "an" if owner[0] in "aeiou" else "a"
            raise HrnextError(f"{option} {folder} is {article} {owner} output folder (it holds {mark}): {command} "
                              f"would mix its files with {owner}'s; choose another {option}")


def output_lock_name(command: str) -> str:
    """The lock file a run of ``command`` holds in its output folder while it writes there."""
    return f".{command}.lock"


def claim_output_folder(out: str | Path, listing: str, overwrite: bool, command: str) -> FolderLock:
    """Create and lock ``out`` for a run of ``command`` (a second run there at once is refused). A
    folder with files in it is refused (runs never mix) unless ``overwrite`` and every file there
    is a previous run's (``check_output_folder``): those are removed. The caller releases the lock."""
    out = Path(out)
    check_writable(out, "--out", folder=True)
    try:
        lock = acquire(out, output_lock_name(command), Holder("output folder", f"{command} run", "--out"))
    except OSError as exc:  # the folder itself could not be made (its own write errors say what they are)
        raise HrnextError(f"cannot create the output folder {out}: {exc.strerror or exc}: choose another --out") \
            from None
    try:
        for name in check_output_folder(out, listing, overwrite, command):
            if (out / name).is_file():
                (out / name).unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def check_output_folder(out: str | Path, listing: str, overwrite: bool, command: str,
                        way_out: str = "--overwrite replaces only a previous run's files") -> set[str]:
    """Refuse ``out`` for a run of ``command`` (nothing touched): a folder with files in it unless
    ``overwrite``, and then anything there that is not a previous run's (the ``files`` of its
    ``out/listing`` JSON, and the listing itself: a user's own files, or a run killed before it
    wrote its listing), named. Returns the names a previous run owns there."""
    out = Path(out)
    check_writable(out, "--out", folder=True)
    locks = {output_lock_name(c) for c in ("predict", "visualize", command)}  # a live run's is refused on its own
    entries = [p for p in out.iterdir() if p.name not in locks] if out.is_dir() else []
    if not entries:
        return set()
    if not overwrite:
        raise HrnextError(f"output folder {out} is not empty: choose another --out, or pass --overwrite to "
                          f"replace a previous {command} run there")
    try:
        previous = json.loads((out / listing).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        previous = []
    owned = {Path(str(name)).name for name in previous} | {listing}  # never outside the folder
    others = sorted(p.name for p in entries if p.name not in owned)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise HrnextError(f"output folder {out} holds {len(others)} file{'s' if len(others) > 1 else ''} no "
                          f"previous {command} run listed in its {listing} ({shown}): {way_out}; choose another "
                          "--out, or move them")
    return owned


def accuracy_latency_png(rows: list[dict], **kwargs) -> bytes:
    """The PNG of :func:`accuracy_latency_figure` (its keyword arguments), for ``write_files``."""
    import matplotlib.pyplot as plt

    fig = accuracy_latency_figure(rows, **kwargs)
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    return image.getvalue()


LABEL_FONT_SIZE = 8


def accuracy_latency_figure(rows: list[dict], *, x: str, y: str, label: str, x_label: str, y_label: str,
                            title: str, caption: str = ""):
    """Scatter of ``y`` against ``x`` (one labelled point per row that has both); ``caption`` is
    printed under the axes.

    Labels sit in a column right of the axes, each joined to its point by a line, at its point's
    height where it can and otherwise moved just enough to keep one label height from its
    neighbours: rows with equal accuracy (FP32 in PyTorch and ONNX Runtime) never print over
    each other, and no label hides a point.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    points = [r for r in rows if is_number(r.get(x)) and is_number(r.get(y))]
    texts = [str(r[label]) for r in points]
    # Enough height for every label at its minimum spacing (about 0.2 inch each).
    fig, ax = plt.subplots(figsize=(8, max(4.5, 1.8 + 0.2 * len(points))), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(points):
        ax.scatter(row[x], row[y], s=40, color=colors[i % len(colors)], zorder=3)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.1, y=0.15)
    if points and min(r[y] for r in points) >= 0:
        ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))  # accuracies are never negative: no axis below 0
    if caption:
        fig.text(0.01, 0.01, caption, fontsize=7, ha="left", va="bottom", wrap=True)
    if not points:
        ax.text(0.5, 0.5, "no backend produced both numbers", ha="center", va="center", transform=ax.transAxes)

    renderer = fig.canvas.get_renderer()
    sizes = [_text_size(fig, text, renderer) for text in texts]
    column_px = max((w for w, _ in sizes), default=0) + 20
    fig.tight_layout(rect=(0, 0.05 if caption else 0, 1 - column_px / fig.bbox.width, 1))
    if points:
        box = ax.get_window_extent(renderer)
        gap = (max(h for _, h in sizes) + 4) / box.height  # one label height, in axes fractions
        to_axes = ax.transAxes.inverted()
        wanted = [float(to_axes.transform(ax.transData.transform((r[x], r[y])))[1]) for r in points]
        # At equal heights the rightmost point keeps its level, so the others' lines climb away
        # from it rather than run through it.
        for i, level in zip(sorted(range(len(points)), key=lambda i: (wanted[i], -points[i][x])),
                            _spread(sorted(wanted), gap)):
            ax.annotate(texts[i], xy=(points[i][x], points[i][y]), xycoords="data", xytext=(1.02, level),
                        textcoords="axes fraction", ha="left", va="center", fontsize=LABEL_FONT_SIZE,
                        color=colors[i % len(colors)], annotation_clip=False, zorder=2,
                        arrowprops={"arrowstyle": "-", "color": colors[i % len(colors)], "lw": 0.6, "alpha": 0.7})
    return fig


def _text_size(fig, text: str, renderer) -> tuple[float, float]:
    """Width and height in pixels of ``text`` in the label font."""
    probe = fig.text(0, 0, text, fontsize=LABEL_FONT_SIZE)
    extent = probe.get_window_extent(renderer)
    probe.remove()
    return extent.width, extent.height


def _spread(wanted: list[float], gap: float) -> list[float]:
    """Levels as close to the sorted ``wanted`` ones as keeps ``gap`` between neighbours, inside
    [gap/2, 1 - gap/2] when they fit there."""
    levels: list[float] = []
    for want in wanted:  # upwards: no closer than gap to the one below
        levels.append(max(want, gap / 2, levels[-1] + gap if levels else -1.0))
    top = 1 - gap / 2
    for i in reversed(range(len(levels))):  # downwards: under the top, and under the one above
        ceiling = top if i == len(levels) - 1 else levels[i + 1] - gap
        levels[i] = min(levels[i], ceiling)
    if levels and levels[0] < gap / 2:  # more labels than fit: even spacing from the bottom
        levels = [gap / 2 + i * gap for i in range(len(levels))]
    return levels
