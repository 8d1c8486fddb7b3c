"""What an export folder's ``manifest.json`` promises, checked before anything touches the GPU.

Pure Python (json, hashlib): a TensorRT engine only runs on the TensorRT version and the GPU
model it was built for, and only for the shapes of its optimisation profile. Deserialising an
engine built elsewhere can crash the process, so these checks run first and fail with one line.
The export side (``hrnext_trt.export.manifest``) writes the same keys read here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from hrnext_trt.errors import HrnextError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "hrnext-trt-export"
MANIFEST_VERSION = 1


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(path: str | Path) -> dict:
    """Read a manifest file, or the ``manifest.json`` inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise HrnextError(f"manifest {path} not found: export the model with `hrnext-trt export-engine` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HrnextError(f"manifest {path} is not readable JSON ({exc}): export the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise HrnextError(f"{path} is not an hrnext-trt export manifest: export the model again")
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise HrnextError(f"{path} has manifest format version {manifest.get('format_version')}, this hrnext-trt "
                          f"reads version {MANIFEST_VERSION}: export the model again")
    return manifest


def artifact_entry(manifest: dict, file_name: str) -> dict:
    """The manifest's record of one file of the export folder."""
    try:
        return manifest["artifacts"][file_name]
    except KeyError:
        listed = ", ".join(sorted(manifest.get("artifacts", {}))) or "none"
        raise HrnextError(f"{file_name} is not listed in the manifest (it lists {listed}): "
                          "use the manifest of the folder the file was exported into") from None


def verify_files(manifest: dict, folder: str | Path) -> None:
    """Re-hash every file the manifest lists; a missing or changed file is an error."""
    folder = Path(folder)
    for name, entry in manifest["artifacts"].items():
        path = folder / name
        if not path.is_file():
            raise HrnextError(f"{path} is listed in the manifest but missing: copy the whole export folder")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise HrnextError(f"{path} differs from the file the manifest describes (sha256 mismatch): "
                              "the file was changed or truncated; export again or copy it anew")


def check_engine_runtime(manifest: dict, file_name: str, tensorrt_version: str, gpu_name: str,
                         compute_capability: str) -> None:
    """Fail unless this engine was built by this TensorRT version for this GPU model."""
    entry = artifact_entry(manifest, file_name)
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


def check_engine_input_shape(manifest: dict, shape: Sequence[int]) -> None:
    """Fail unless ``shape`` is (B, 3, H, W) with H, W the export's and B inside the batch profile."""
    height, width = manifest["model"]["input_size"]
    profile = manifest["batch_profile"]
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or shape[1:] != (3, height, width):
        raise HrnextError(f"input shape {shape} does not fit this export: it takes (batch, 3, {height}, {width}) "
                          "crops; crop with the exported input size")
    if not profile["min"] <= shape[0] <= profile["max"]:
        raise HrnextError(f"batch {shape[0]} is outside the engine's batch profile {profile['min']}..{profile['max']}: "
                          "split the batch, or rebuild with `--batch MIN,OPT,MAX` covering it")
