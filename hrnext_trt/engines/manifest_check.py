"""What an export folder's ``manifest.json`` (``hrnext_trt.manifest.Manifest``) promises, checked
before anything touches the GPU.

Pure Python: an engine only runs with the builder and version that built it (TensorRT or
TensorRT for RTX), on the GPU model (TensorRT) or compute capabilities (TensorRT for RTX) it was
built for, and only for the shapes of its optimisation profile. Deserialising an engine built elsewhere
can crash the process, so these checks run first and fail with one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hrnext_trt.engines.builders import INSTALL_HINTS, RTX_COMPUTE_CAPABILITIES, TENSORRT, TENSORRT_RTX, TITLES
from hrnext_trt.errors import HrnextError
from hrnext_trt.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file


MODEL_SUFFIXES = (".onnx", ".engine")


class EngineNotRunnableHere(HrnextError):
    """An intact engine that this machine cannot run: another builder or version, another GPU, no
    GPU or pycuda, or the library's own refusal. Running it alone is an error; in a comparison of
    backends it is a row that says why, beside the rows that could run."""


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


def engine_builder(entry: dict) -> tuple[str, str | None]:
    """(builder, version) an engine entry was built with; entries from before TensorRT for RTX name TensorRT."""
    return entry.get("builder", TENSORRT), entry.get("builder_version") or entry.get("tensorrt_version")


def check_engine_builder(manifest: Manifest, file_name: str, builder: str, version: str) -> None:
    """Fail unless this engine was built by ``builder`` (tensorrt or tensorrt-rtx) at this ``version``."""
    built_by, built_version = engine_builder(manifest.entry(file_name))
    built_version = built_version or manifest["versions"].get(built_by.replace("-", "_"))
    if built_by != builder:
        raise EngineNotRunnableHere(f"{file_name} was built by {TITLES[built_by]} but this runtime is "
                                    f"{TITLES[builder]}: run it with {TITLES[built_by]} ({INSTALL_HINTS[built_by]}) "
                                    f"or rebuild it with `hrnext-trt export-engine --builder {builder}`")
    if built_version != version:
        raise EngineNotRunnableHere(f"{file_name} was built with {TITLES[builder]} {built_version} but "
                                    f"{TITLES[builder]} {version} is running: engines only load in the version that "
                                    "built them; rebuild with `hrnext-trt export-engine` on this machine")


def check_engine_gpu(manifest: Manifest, file_name: str, gpu_name: str, compute_capability: str) -> None:
    """Fail unless this engine runs on this GPU: a TensorRT engine on the GPU model it was built on, a TensorRT
    for RTX engine on any GPU of the compute capabilities it was built for."""
    entry = manifest.entry(file_name)
    builder, _ = engine_builder(entry)
    if builder == TENSORRT_RTX:
        targets = entry.get("targets") or []
        if compute_capability not in targets:
            fix = (f"rebuild it with `hrnext-trt export-engine --compute-capability {compute_capability}`"
                   if compute_capability in RTX_COMPUTE_CAPABILITIES else
                   "TensorRT for RTX does not build for it: rebuild it with `--builder tensorrt` on this GPU")
            raise EngineNotRunnableHere(f"{file_name} was built for compute capabilities "
                                        f"{', '.join(targets) or 'none'} but this GPU ({gpu_name}) has "
                                        f"{compute_capability}: {fix}")
        return
    gpu = entry.get("gpu") or manifest.get("gpu") or {}
    if gpu.get("compute_capability") != compute_capability:
        raise EngineNotRunnableHere(f"{file_name} was built for compute capability {gpu.get('compute_capability')} "
                                    f"({gpu.get('name')}) but this GPU ({gpu_name}) has {compute_capability}: "
                                    "rebuild the engine on this GPU")
    if gpu.get("name") != gpu_name:
        raise EngineNotRunnableHere(f"{file_name} was built on a {gpu.get('name')} but this GPU is a {gpu_name}: "
                                    "TensorRT tunes engines per GPU model; rebuild the engine on this GPU")


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
                          f"run {profile['min']} to {profile['max']} crops per call (trt-eval, bench: --batch "
                          f"{profile['max']}), or rebuild with `--batch MIN,OPT,MAX` covering {shape[0]}")
