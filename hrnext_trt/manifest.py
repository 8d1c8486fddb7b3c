"""``manifest.json``: what an export folder holds and what it was made from, as checkable facts.

One type for both sides: the exporter creates a ``Manifest``, adds each file it writes and saves
it; the runtime (``hrnext_trt.engines``) and the comparisons load the same type. Every file is
listed with its sha256 and size; engines add the builder (TensorRT or TensorRT for RTX), its
version, the compute capabilities or GPU they were built for, and what the build reported
(layers by type and precision, I/O, profile, seconds).
A ``Manifest`` reads as the JSON document it is (``manifest["artifacts"]``), and has typed
accessors for what the code asks of it (``model``, ``batch_profile``, ``entry(name)``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from hrnext_trt.contract import INPUT_NAME, OUTPUT_NAME
from hrnext_trt.errors import HrnextError
from hrnext_trt.model_spec import ModelSpec
from hrnext_trt.reports import json_safe

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "hrnext-trt-export"
MANIFEST_VERSION = 1


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Manifest(Mapping):
    """The manifest document; :func:`load_manifest` reads one, :meth:`create` starts one."""

    def __init__(self, document: dict):
        self._doc = document

    # -- the writer's side ------------------------------------------------------------------------

    @classmethod
    def create(cls, model: ModelSpec, checkpoint: Path, batch: tuple[int, int, int],
               gpu: dict | None, versions: dict) -> "Manifest":
        """A new manifest of an export of ``model`` from ``checkpoint`` (whose recipe validates with
        ``model.flip_test`` or not; where that is unknown, flip test); files are added as they are written."""
        height, width = model.input_size
        return cls({
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model": model.to_dict(),
            "source_checkpoint": {"path": str(checkpoint.resolve()), "sha256": sha256_file(checkpoint),
                                  "size": checkpoint.stat().st_size},
            "flip_test": model.flip_test is not False,
            "versions": versions,
            "gpu": gpu,
            "batch_profile": {"min": batch[0], "opt": batch[1], "max": batch[2]},
            "input": {"name": INPUT_NAME, "shape": ["batch", 3, height, width], "dtype": "float32"},
            "output": {"name": OUTPUT_NAME, "shape": ["batch", model.num_joints, *model.heatmap_size],
                       "dtype": "float32"},
            "artifacts": {},
            "timings_s": {},
        })

    def add_file(self, path: Path, kind: str, precision: str | None, **extra) -> dict:
        """List ``path`` (a file of the export folder) with its size and sha256; returns its entry."""
        entry = {"kind": kind, "precision": precision, "size": path.stat().st_size, "sha256": sha256_file(path),
                 **extra}
        self._doc["artifacts"][path.name] = entry
        return entry

    def record(self, section: str, value) -> None:
        """Set a top-level section (``crops``, ``engines``, ``timings_s``)."""
        self._doc[section] = value

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        # An overflowed check's infinite error is null: a bare Infinity is not JSON.
        path.write_text(json.dumps(json_safe(self._doc), indent=1, allow_nan=False) + "\n", encoding="utf-8")
        return path

    # -- the reader's side ------------------------------------------------------------------------

    @property
    def model(self) -> ModelSpec:
        return ModelSpec.from_dict(self._doc["model"])

    @property
    def flip_test(self) -> bool:
        """Whether the source checkpoint's recipe scores with flip test, so that an evaluation of the
        export alone scores as one with the checkpoint does (True where an older manifest does not say)."""
        return bool(self._doc.get("flip_test", True))

    @property
    def batch_profile(self) -> dict:
        """``{"min", "opt", "max"}`` batch of the engines' optimisation profile."""
        return self._doc["batch_profile"]

    def entry(self, file_name: str) -> dict:
        """The manifest's record of one file of the export folder."""
        try:
            return self._doc["artifacts"][file_name]
        except KeyError:
            listed = ", ".join(sorted(self._doc.get("artifacts", {}))) or "none"
            raise HrnextError(f"{file_name} is not listed in the manifest (it lists {listed}): "
                              "use the manifest of the folder the file was exported into") from None

    def to_dict(self) -> dict:
        return self._doc

    # -- the JSON document ------------------------------------------------------------------------

    def __getitem__(self, key: str):
        return self._doc[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._doc)

    def __len__(self) -> int:
        return len(self._doc)


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest file, or the ``manifest.json`` inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise HrnextError(f"manifest {path} not found: export the model with `hrnext-trt export-engine` first")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HrnextError(f"manifest {path} is not readable JSON ({exc}): export the model again") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise HrnextError(f"{path} is not an hrnext-trt export manifest: export the model again")
    if document.get("format_version") != MANIFEST_VERSION:
        raise HrnextError(f"{path} has manifest format version {document.get('format_version')}, this hrnext-trt "
                          f"reads version {MANIFEST_VERSION}: export the model again")
    return Manifest(document)
