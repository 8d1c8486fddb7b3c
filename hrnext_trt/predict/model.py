"""The pose network of ``predict``: a checkpoint (PyTorch), an ONNX file (ONNX Runtime) or a
TensorRT engine, as a runner of ``hrnext_trt.runners`` plus what the crops need to know: the
input size and the keypoint metadata, from the file's own ``ModelSpec`` (checkpoint fields, ONNX
metadata, the engine's export manifest)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.contract import INPUT_SIZE_HINT, resolve_input_size, unavailable_reason
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta, model_meta
from hrnext_trt.manifest import load_manifest
from hrnext_trt.model_spec import ModelSpec
from hrnext_trt.runners import OnnxRuntimeRunner, PyTorchRunner, Runner, TensorRTRunner
from hrnext_trt.runners.onnxruntime import read_onnx_metadata

# Listed in a folder's hint; any file that is neither ONNX nor an engine is read as a checkpoint
# (export-engine and trt-eval take a .safetensors or .bin state_dict too).
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


@dataclass
class PoseNetwork:
    runner: Runner  # not yet active
    meta: KeypointMeta
    input_size: tuple[int, int]  # (H, W)
    description: str


CLI_FLAGS = {"arch": "--arch", "num_joints": "--joints", "input_size": "--input-size"}
PYTHON_ARGS = {"arch": "arch=", "num_joints": "num_joints=", "input_size": "input_size="}


def load_pose_network(path: str | Path, device: str, threads: int | None = None, batch: int = 1,
                      arch: str | None = None, num_joints: int | None = None,
                      input_size: tuple[int, int] | None = None, python: bool = False) -> PoseNetwork:
    """``arch``, ``num_joints`` and ``input_size`` describe a checkpoint that does not record its model
    (the paper's mmpose files); ONNX files and engines carry their own description. ``python``: the
    messages name keyword arguments, not command-line flags."""
    names = PYTHON_ARGS if python else CLI_FLAGS
    if not isinstance(path, (str, os.PathLike)):
        raise HrnextError(f"pose model must be a path to a checkpoint (.pth), an ONNX file or a TensorRT engine, "
                          f"got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        models = sorted(p.name for p in path.iterdir()
                        if p.suffix.lower() in (*CHECKPOINT_SUFFIXES, ".onnx", ".engine"))
        inside = f": pass one of its files, e.g. {path / models[0]} ({', '.join(models)})" if models else \
            ", not a model file: give a checkpoint (.pth), an ONNX file or a TensorRT engine"
        raise HrnextError(f"pose model {path} is a folder{inside}")
    if not path.is_file():
        raise HrnextError(f"pose model {path} not found: give a checkpoint (.pth), an ONNX file or a TensorRT engine")
    suffix = path.suffix.lower()
    given = [names[key] for key, value in (("arch", arch), ("num_joints", num_joints), ("input_size", input_size))
             if value is not None]
    if given and suffix in (".onnx", ".engine"):
        raise HrnextError(f"{', '.join(given)}: {path.name} describes its own model; these options are for "
                          "checkpoints that do not record theirs (the paper's .pth files): drop them")
    if suffix == ".onnx":
        network = _onnx(path, device, threads)
    elif suffix == ".engine":
        network = _engine(path)
    else:
        network = _checkpoint(path, device, threads, arch, num_joints, input_size, names)
    network.runner.check_batch(batch)  # an engine outside its optimisation profile fails now
    return network


def _checkpoint(path: Path, device: str, threads: int | None, arch: str | None, num_joints: int | None,
                input_size: tuple[int, int] | None, names: dict[str, str]) -> PoseNetwork:
    from hrnext_trt.models import checkpoint_meta, checkpoint_spec, load_pose_model, read_checkpoint

    ckpt = read_checkpoint(path)
    spec = checkpoint_spec(ckpt)
    kind = checkpoint_meta(ckpt)["format"]
    if kind in ("mmpose", "state_dict"):  # files that record no model: every missing flag in one line
        missing = [names[key] for key, given in (("arch", arch), ("num_joints", num_joints),
                                                 ("input_size", input_size)) if given is None]
        if missing:
            what = "an mmpose file" if kind == "mmpose" else "a bare state_dict"
            example = "--arch hrnext_s --joints 14 --input-size 256x192" if names is CLI_FLAGS else \
                "arch='hrnext_s', num_joints=14, input_size=(256, 192)"
            raise HrnextError(f"checkpoint {path} is {what}, which does not record its model: pass "
                              f"{', '.join(missing)} (e.g. {example} for the "
                              f"paper's CrowdPose HRNeXt-S; input sizes: {INPUT_SIZE_HINT})")
    model = load_pose_model(ckpt, arch=arch, num_joints=num_joints, source=path)
    size = resolve_input_size(input_size, spec.input_size)
    runner = PyTorchRunner(model, "fp32", device, threads=threads)
    return PoseNetwork(runner, model_meta(spec.dataset, model.num_joints), size, f"{path.name} (PyTorch fp32, {model.arch})")


def _onnx(path: Path, device: str, threads: int | None) -> PoseNetwork:
    import onnx

    metadata = read_onnx_metadata(path)
    spec = ModelSpec.from_dict(metadata)
    graph = onnx.load(str(path), load_external_data=False).graph
    if len(graph.input) != 1 or len(graph.output) < 1:  # an empty file loads as an empty graph
        raise HrnextError(f"{path} is not a pose network's ONNX file ({len(graph.input)} inputs, "
                          f"{len(graph.output)} outputs; empty or another model): export it with hrnext-trt "
                          "export-engine")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (3, None):
        raise HrnextError(f"{path} takes input of shape {dims}: expected (batch, 3, H, W), colour crops channels "
                          "first; export it with hrnext-trt export-engine")
    static = tuple(dims[2:4]) if None not in dims[2:4] else None
    size = spec.input_size or static
    if size is None:
        raise HrnextError(f"{path} has a dynamic input size and no hrnext-trt metadata: export it with "
                          "`hrnext-trt export-engine`, or give it a fixed (B, 3, H, W) input")
    if static is not None and static != size:
        raise HrnextError(f"{path} says it takes {size[0]}x{size[1]} crops but its input is {static[0]}x{static[1]}: "
                          "the file was edited or belongs to another model; export it again")
    if spec.dataset is None and spec.num_joints is None:
        out_dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
        if len(out_dims) != 4 or not out_dims[1]:
            raise HrnextError(f"{path} has no hrnext-trt metadata and its output is not heatmaps (B, J, h, w)")
        spec = ModelSpec(num_joints=out_dims[1], input_size=size)
    precision = metadata.get("precision", "fp32")
    runner = OnnxRuntimeRunner(path, precision, device=device, threads=threads)
    return PoseNetwork(runner, model_meta(spec.dataset, spec.num_joints), size,
                       f"{path.name} (ONNX Runtime {precision}, {device})")


def _engine(path: Path) -> PoseNetwork:
    manifest = load_manifest(path.parent)  # the export folder's manifest says what the engine takes
    entry = manifest.entry(path.name)
    reason = unavailable_reason("tensorrt", "cuda")
    if reason:
        onnx = entry.get("built_from")
        instead = f": predict with {path.parent / onnx}, the ONNX it was built from, in ONNX Runtime" \
            if onnx and (path.parent / onnx).is_file() else ""
        raise HrnextError(f"cannot run the TensorRT engine {path.name} here: {reason}{instead}")
    precision = entry.get("precision") or "fp32"
    spec = manifest.model
    runner = TensorRTRunner(path, precision, manifest=manifest)
    return PoseNetwork(runner, model_meta(spec.dataset, spec.num_joints), spec.input_size,
                       f"{path.name} (TensorRT {precision})")
