"""The pose network of ``predict``: a checkpoint (PyTorch), an ONNX file (ONNX Runtime) or a
TensorRT engine, as a runner of ``hrnext_trt.runners`` plus what the crops need to know: the
input size and the keypoint metadata, from the file's own ``ModelSpec`` (checkpoint fields, ONNX
metadata, the engine's export manifest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta, get_meta, meta_for_joints
from hrnext_trt.manifest import load_manifest
from hrnext_trt.model_spec import ModelSpec
from hrnext_trt.runners import OnnxRuntimeRunner, PyTorchRunner, Runner, TensorRTRunner
from hrnext_trt.runners.onnxruntime import read_onnx_metadata

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")


@dataclass
class PoseNetwork:
    runner: Runner  # not yet active
    meta: KeypointMeta
    input_size: tuple[int, int]  # (H, W)
    description: str


def load_pose_network(path: str | Path, device: str, threads: int | None = None, batch: int = 1) -> PoseNetwork:
    path = Path(path)
    if not path.is_file():
        raise HrnextError(f"pose model {path} not found: give a checkpoint (.pth), an ONNX file or a TensorRT engine")
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        network = _checkpoint(path, device, threads)
    elif suffix == ".onnx":
        network = _onnx(path, device, threads)
    elif suffix == ".engine":
        network = _engine(path)
    else:
        raise HrnextError(f"pose model {path}: expected a checkpoint (.pth), an ONNX file (.onnx) or an engine "
                          "(.engine)")
    network.runner.check_batch(batch)  # an engine outside its optimisation profile fails now
    return network


def _meta(spec: ModelSpec) -> KeypointMeta:
    return get_meta(spec.dataset) if spec.dataset else meta_for_joints(spec.num_joints)


def _checkpoint(path: Path, device: str, threads: int | None) -> PoseNetwork:
    from hrnext_trt.models import checkpoint_spec, load_pose_model, read_checkpoint

    ckpt = read_checkpoint(path)
    spec = checkpoint_spec(ckpt)
    if spec.input_size is None or spec.num_joints is None:
        raise HrnextError(f"checkpoint {path} does not record its input size and joints (an mmpose file?): export "
                          "it with `hrnext-trt export-engine --arch ... --joints ...` and predict with the ONNX file")
    runner = PyTorchRunner(load_pose_model(ckpt), "fp32", device, threads=threads)
    return PoseNetwork(runner, _meta(spec), spec.input_size, f"{path.name} (PyTorch fp32, {spec.arch})")


def _onnx(path: Path, device: str, threads: int | None) -> PoseNetwork:
    import onnx

    metadata = read_onnx_metadata(path)
    spec = ModelSpec.from_dict(metadata)
    graph = onnx.load(str(path), load_external_data=False).graph
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.input[0].type.tensor_type.shape.dim]
    static = tuple(dims[2:4]) if len(dims) == 4 and None not in dims[2:4] else None
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
    return PoseNetwork(runner, _meta(spec), size, f"{path.name} (ONNX Runtime {precision}, {device})")


def _engine(path: Path) -> PoseNetwork:
    manifest = load_manifest(path.parent)  # the export folder's manifest says what the engine takes
    precision = manifest.entry(path.name).get("precision") or "fp32"
    spec = manifest.model
    runner = TensorRTRunner(path, precision, manifest=manifest)
    return PoseNetwork(runner, _meta(spec), spec.input_size, f"{path.name} (TensorRT {precision})")
