"""What an export folder holds, and a runner for each file.

The folder's ``manifest.json`` (written by ``hrnext-trt export-engine``) is the authority: it
lists every file with its precision, sha256 and the input size the export was made for. Every
listed file is re-hashed before anything runs, and a model file the manifest does not list makes
the folder a mix of two exports: both are refused in one line. A folder without a manifest (ONNX
files copied by hand) is read by file name: ``model.onnx`` (FP32), ``model_fp16.onnx``,
``model_int8.onnx`` and ``*.engine``, with the precision and input size taken from each ONNX
file's metadata where it has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.contract import resolve_input_size, unavailable_reason
from hrnext_trt.engines.manifest_check import verify_folder, verify_model_file
from hrnext_trt.errors import HrnextError
from hrnext_trt.manifest import MANIFEST_NAME, Manifest, load_manifest
from hrnext_trt.model_spec import ModelSpec
from hrnext_trt.runners.base import Runner
from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner, read_onnx_metadata
from hrnext_trt.runners.tensorrt import TensorRTRunner

_BACKEND_OF_SUFFIX = {".onnx": "onnxruntime", ".engine": "tensorrt"}
_FALLBACK_ONNX = {"model.onnx": "fp32", "model_fp16.onnx": "fp16", "model_int8.onnx": "int8"}


@dataclass(frozen=True)
class Artifact:
    path: Path
    backend: str  # "onnxruntime" or "tensorrt"
    precision: str  # "fp32", "fp16" or "int8"
    input_size: tuple[int, int] | None  # (H, W) the file was exported for; None if unknown
    manifest: Manifest | None = None
    spec: ModelSpec | None = None  # the model it holds: the manifest's, else the ONNX metadata's

    def check_model(self, arch: str | None, num_joints: int | None, what: str) -> None:
        """One line when the file holds another model than ``what`` (a comparison of two models' speed
        or accuracy would be meaningless)."""
        spec = self.spec
        if spec is None or arch is None or spec.arch is None:
            return
        if spec.arch != arch or num_joints not in (None, spec.num_joints):  # None: joints said by nothing yet
            source = f" ({self.manifest['source_checkpoint']['path']})" if self.manifest is not None else ""
            raise HrnextError(f"{self.path} holds {spec.arch} with {spec.num_joints} joints, {what} is {arch} with "
                              f"{num_joints}: compare the checkpoint it was exported from{source}, or export this "
                              "one")

    def runner(self, device: str = "cpu", threads: int | None = None) -> Runner:
        """A (not yet active) runner for this file; ``device`` applies to ONNX files."""
        if self.backend == "tensorrt":
            return TensorRTRunner(self.path, self.precision, manifest=self.manifest)
        return OnnxRuntimeRunner(self.path, self.precision, device=device, threads=threads, manifest=self.manifest)

    def check_input_size(self, input_size: tuple[int, int], what: str) -> None:
        """One line when the file was exported for another crop size than ``what`` takes."""
        if self.input_size is not None and tuple(self.input_size) != tuple(input_size):
            have, want = "x".join(map(str, self.input_size)), "x".join(map(str, input_size))
            raise HrnextError(f"{self.path} was exported for {have} crops but {what} takes {want}: export again "
                              f"with --input-size {want}, or use the matching checkpoint")


def check_outside_export(path: str | Path | None, option: str, engines: str | Path | None) -> None:
    """One line when a report would be written into the export folder ``engines`` (or below it): it
    would mix with the export's files, and a later export there is refused."""
    if path is None or engines is None:
        return
    target, folder = Path(path).resolve(), Path(engines).resolve()
    if target == folder or folder in target.parents:
        where = "is the export folder" if target == folder else f"is inside the export folder {engines}"
        raise HrnextError(f"{option} {path} {where}: the reports would mix with the export's files (and a later "
                          "export there is refused); choose another place")


def run_input_size(requested, recorded, artifacts: list[Artifact], default=None) -> tuple[int, int] | None:
    """The crop size of a run over a model and its export: the checkpoint's recorded one, else the one
    asked for, else the export's, else ``default``. Asked for, it must agree with the checkpoint's and,
    where the checkpoint records none, with the export's; then every file must be for it."""
    exported = artifacts[0].input_size if artifacts else None
    if requested is not None and not recorded and exported is not None and tuple(requested) != tuple(exported):
        raise HrnextError(f"--input-size {'x'.join(map(str, requested))} differs from the "
                          f"{'x'.join(map(str, exported))} the export {artifacts[0].path.parent} was made for: "
                          "leave --input-size out")
    size = resolve_input_size(requested, recorded, exported or default)
    if size is not None:
        for artifact in artifacts:
            artifact.check_input_size(size, "the checkpoint" if recorded else artifacts[0].path.name)
    return size


def _precision_from_name(name: str) -> str:
    for precision in ("fp16", "int8", "fp32"):
        if precision in name:
            return precision
    return "fp32"


def discover_artifacts(folder: str | Path) -> list[Artifact]:
    """Every ONNX file and TensorRT engine of an export folder, FP32 first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HrnextError(f"engines folder {folder} not found: export with `hrnext-trt export-engine --out {folder}`")
    if (folder / MANIFEST_NAME).is_file():
        artifacts = _from_manifest(folder, load_manifest(folder))
    else:
        artifacts = _from_file_names(folder)
    if not artifacts:
        raise HrnextError(f"{folder} holds no model.onnx, model_fp16.onnx, model_int8.onnx or *.engine: "
                          "export with `hrnext-trt export-engine`")
    order = {"fp32": 0, "fp16": 1, "int8": 2}
    return sorted(artifacts, key=lambda a: (a.backend != "onnxruntime", order.get(a.precision, 3), a.path.name))


def load_artifact(path: str | Path) -> Artifact:
    """One ONNX file or engine, checked against the manifest beside it (sha256): what a command that
    loads a single model file (``predict``) calls. Without a manifest an ONNX file is read by its
    metadata; an engine needs its manifest (TensorRT version and GPU are checked from it)."""
    path = Path(path)
    backend = _BACKEND_OF_SUFFIX.get(path.suffix)
    if backend is None:
        raise HrnextError(f"{path} is neither an ONNX file (.onnx) nor a TensorRT engine (.engine)")
    if not path.is_file():
        raise HrnextError(f"{path} not found: export with `hrnext-trt export-engine`")
    entry = verify_model_file(path)
    if entry is not None:
        manifest = load_manifest(path.parent)
        return Artifact(path, backend, entry.get("precision") or _precision_from_name(path.name),
                        manifest.model.input_size, manifest, manifest.model)
    if backend == "tensorrt":
        raise HrnextError(f"{path} has no {MANIFEST_NAME} beside it: engines are loaded with the manifest of their "
                          "export folder (copy the whole folder)")
    meta = read_onnx_metadata(path)
    spec = ModelSpec.from_dict(meta)
    return Artifact(path, backend, meta.get("precision") or _precision_from_name(path.name), spec.input_size,
                    spec=spec)


def _from_manifest(folder: Path, manifest: Manifest) -> list[Artifact]:
    verify_folder(manifest, folder)  # before anything runs: a bad file costs seconds, not a whole evaluation
    input_size = manifest.model.input_size
    artifacts = []
    for name, entry in manifest["artifacts"].items():
        backend = _BACKEND_OF_SUFFIX.get(Path(name).suffix)
        if backend is None:
            continue  # build logs, ...
        precision = entry.get("precision") or _precision_from_name(name)
        artifacts.append(Artifact(folder / name, backend, precision, input_size, manifest, manifest.model))
    return artifacts


def _from_file_names(folder: Path) -> list[Artifact]:
    artifacts = []
    for name, precision in _FALLBACK_ONNX.items():
        path = folder / name
        if path.is_file():
            metadata = read_onnx_metadata(path)
            spec = ModelSpec.from_dict(metadata)
            # The file's own word over its name (a copied model_int8.onnx named model.onnx is INT8).
            precision = metadata.get("precision") or precision
            artifacts.append(Artifact(path, "onnxruntime", precision, spec.input_size, spec=spec))
    for path in sorted(folder.glob("*.engine")):
        artifacts.append(Artifact(path, "tensorrt", _precision_from_name(path.stem), None))
    return artifacts


def no_engine_reason(artifacts: list[Artifact]) -> str | None:
    """Why a comparison has no TensorRT engine to run (None when it has one): the first missing
    piece, the package and GPU before the engine files."""
    if any(a.backend == "tensorrt" for a in artifacts):
        return None
    return unavailable_reason("tensorrt", "cuda") or ("no .engine file in the engines folder (export-engine builds "
                                                      "them where TensorRT for RTX, or TensorRT and a GPU, are "
                                                      "installed)")
