"""What an export folder's ``manifest.json`` (``hrnext_trt.manifest.Manifest``) promises, checked
before anything touches the GPU.

Pure Python: a TensorRT engine only runs on the TensorRT version and the GPU model it was built
for, and only for the shapes of its optimisation profile. Deserialising an engine built elsewhere
can crash the process, so these checks run first and fail with one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hrnext_trt.errors import HrnextError
from hrnext_trt.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file


MODEL_SUFFIXES = (".onnx", ".engine")


def verify_files(manifest: Manifest, folder: str | Path, names: Sequence[str] | None = None) -> None:
    """Re-hash the files the manifest lists (or those of ``names``); a missing or changed file is an error."""
    folder = Path(folder)
    for name in manifest["artifacts"] if names is None else names:
        entry, path = manifest.entry(name), folder / name
        if not path.is_file():
            raise HrnextError(f"{path} is listed in {folder / MANIFEST_NAME} but missing: copy the whole export "
                              "folder, or export again")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise HrnextError(f"{path} is not the file {folder / MANIFEST_NAME} describes (sha256 differs: changed, "
                              "truncated or from another export): export again")


def verify_folder(manifest: Manifest, folder: str | Path) -> None:
    """Every listed file intact, and no model file beside them that the manifest does not list (a
    folder mixing two exports)."""
    folder = Path(folder)
    verify_files(manifest, folder)
    unlisted = sorted(p.name for p in folder.iterdir()
                      if p.suffix in MODEL_SUFFIXES and p.name not in manifest["artifacts"])
    if unlisted:
        raise HrnextError(f"{folder} holds {', '.join(unlisted)}, which its {MANIFEST_NAME} does not list (files of "
                          "another export): export again into this folder")


def verify_model_file(path: str | Path, manifest: Manifest | None = None) -> dict | None:
    """Check one model file against ``manifest`` (default: the ``manifest.json`` beside it, if any);
    the file's manifest entry, or None for a file without a manifest. What every loader calls."""
    path = Path(path)
    if manifest is None:
        if not (path.parent / MANIFEST_NAME).is_file():
            return None
        manifest = load_manifest(path.parent)
    verify_files(manifest, path.parent, [path.name])
    return manifest.entry(path.name)


def check_engine_runtime(manifest: Manifest, file_name: str, tensorrt_version: str, gpu_name: str,
                         compute_capability: str) -> None:
    """Fail unless this engine was built by this TensorRT version for this GPU model."""
    entry = manifest.entry(file_name)
    built_trt = entry.get("tensorrt_version") or manifest["versions"].get("tensorrt")
    if built_trt != tensorrt_version:
        raise HrnextError(f"{file_name} was built with TensorRT {built_trt} but TensorRT {tensorrt_version} is "
                          f"running: engines only load in the version that built them; rebuild with "
                          f"`hrnext-trt export-engine` on this machine")
    gpu = entry.get("gpu") or manifest.get("gpu") or {}
    if gpu.get("compute_capability") != compute_capability:
        raise HrnextError(f"{file_name} was built for compute capability {gpu.get('compute_capability')} "
                          f"({gpu.get('name')}) but this GPU ({gpu_name}) has {compute_capability}: rebuild the "
                          "engine on this GPU")
    if gpu.get("name") != gpu_name:
        raise HrnextError(f"{file_name} was built on a {gpu.get('name')} but this GPU is a {gpu_name}: TensorRT "
                          "tunes engines per GPU model; rebuild the engine on this GPU")


def check_engine_input_shape(manifest: Manifest, shape: Sequence[int]) -> None:
    """Fail unless ``shape`` is (B, 3, H, W) with H, W the export's and B inside the batch profile."""
    height, width = manifest.model.input_size
    profile = manifest.batch_profile
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or shape[1:] != (3, height, width):
        raise HrnextError(f"input shape {shape} does not fit this export: it takes (batch, 3, {height}, {width}) "
                          "crops; crop with the exported input size")
    if not profile["min"] <= shape[0] <= profile["max"]:
        raise HrnextError(f"batch {shape[0]} is outside the engine's batch profile {profile['min']}..{profile['max']}: "
                          "split the batch, or rebuild with `--batch MIN,OPT,MAX` covering it")
