"""ONNX Runtime runner: FP32, FP16 and INT8 (Q/DQ) ONNX files on the CPU or CUDA provider.

No torch here: this runner is part of the deployment runtime. ``onnxruntime`` itself is imported
on activation.

Q/DQ (INT8) graphs run unfused: every QuantizeLinear/DequantizeLinear pair is applied in float,
which is the arithmetic TensorRT performs (int8 products, exact int32 sums, then the scales).
ONNX Runtime's default fuses the pairs into its u8s8 integer kernels, whose pairwise 16-bit sums
saturate on x86 CPUs without VNNI (AVX2 only): the same INT8 file would then score worse on one
CPU than on another. ONNX Runtime stands in for TensorRT to judge accuracy here, so the answer
must not depend on the CPU; INT8 on the CPU is an accuracy check, never the fast path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hrnext_trt.contract import INPUT_NAME, METADATA_KEY, OUTPUT_NAME
from hrnext_trt.engines.manifest_check import verify_model_file
from hrnext_trt.errors import HrnextError, first_line
from hrnext_trt.pipeline import run_batched
from hrnext_trt.runners.base import BackendUnavailable, Runner

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# Session config that keeps Q/DQ pairs as float ops instead of fusing them into integer kernels.
UNFUSED_QDQ = ("session.disable_quant_qdq", "1")


def session_providers(device: str, tf32: bool = False) -> list:
    """The providers of a session on ``device`` (CUDA with the CPU behind it for ops it lacks).

    ONNX Runtime's CUDA provider rounds float32 convolutions and GEMMs to TF32 unless told not to
    (its ``use_tf32`` option defaults on); the runner's FP32 rows are IEEE float32 like PyTorch's
    FP32 reference and the FP32 engine, so it turns that off."""
    if device == "cuda":
        return [("CUDAExecutionProvider", {"use_tf32": "1" if tf32 else "0"}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def check_provider(session, device: str, what: str) -> None:
    """Raise ``BackendUnavailable`` when ``session`` did not get ``device``'s provider: ONNX Runtime
    falls back to the CPU when CUDA fails to load, and the CPU must never be timed as CUDA."""
    if _PROVIDERS[device] not in session.get_providers():
        raise BackendUnavailable(f"onnxruntime could not load {_PROVIDERS[device]} for {what}")


def read_onnx_metadata(path: str | Path) -> dict:
    """The ``hrnext_trt`` metadata the exporter embeds (arch, input_size, precision, ...); {} if none."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise HrnextError(f"ONNX file {path} does not exist: run `hrnext-trt export-engine` first")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: a truncated or foreign file
        raise HrnextError(f"{path} is not a readable ONNX file ({type(exc).__name__}; truncated or not ONNX): "
                          "export again") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        return {}
    try:
        meta = json.loads(props[METADATA_KEY])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise HrnextError(f"{path} carries {METADATA_KEY!r} metadata that is not a JSON object: the file was edited "
                          "or made by another tool; export again, or drop that metadata_props entry")
    return meta


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: str | Path, precision: str, device: str = "cpu", threads: int | None = None,
                 name: str | None = None, manifest=None):
        self.path = Path(path)
        self.manifest = manifest  # None: the manifest.json beside the file, if there is one
        self.threads = threads
        super().__init__(name or f"onnxruntime-{precision}", precision, device)
        self._session = None
        self._input_shape: tuple = ()
        self._fixed_batch: int | None = None

    def _activate(self) -> None:
        if not self.path.is_file():
            raise HrnextError(f"ONNX file {self.path} does not exist: run `hrnext-trt export-engine` first")
        self._require_backend(f"onnxruntime on {self.device}")
        verify_model_file(self.path, self.manifest)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 3  # warnings about unused initialisers would flood the table
        ort.set_default_logger_severity(3)  # a load error is said in one line below, not also in ORT's log
        options.add_session_config_entry(*UNFUSED_QDQ)  # TensorRT's INT8 arithmetic on any CPU (see above)
        try:
            session = ort.InferenceSession(str(self.path), sess_options=options,
                                           providers=session_providers(self.device))
        except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, ...: one line, not its dump
            raise HrnextError(f"onnxruntime cannot load {self.path} ({type(exc).__name__}: {first_line(exc)}): "
                              "export again") from None
        check_provider(session, self.device, str(self.path))
        inputs = {i.name: i for i in session.get_inputs()}
        if INPUT_NAME not in inputs:
            raise HrnextError(f"{self.path} has inputs {sorted(inputs)}, not {INPUT_NAME!r}: "
                              "export it with `hrnext-trt export-engine`")
        dims = [d if isinstance(d, int) else None for d in inputs[INPUT_NAME].shape]  # None: symbolic
        if len(dims) != 4:
            raise HrnextError(f"{self.path} takes {INPUT_NAME!r} of shape {inputs[INPUT_NAME].shape}: expected "
                              "(batch, C, H, W), channels first; export it with hrnext-trt export-engine")
        self._input_type = np.float16 if inputs[INPUT_NAME].type == "tensor(float16)" else np.float32
        self._fixed_batch = dims[0]  # some ONNX files take exactly one batch size: run in chunks of it
        self._input_shape = tuple(dims[1:])
        self._output_names = [o.name for o in session.get_outputs()]
        if OUTPUT_NAME not in self._output_names:
            raise HrnextError(f"{self.path} has outputs {self._output_names}, not {OUTPUT_NAME!r}: export it with "
                              "`hrnext-trt export-engine`")
        self._session = session

    def _deactivate(self) -> None:
        self._session = None

    @property
    def input_shape(self) -> tuple:
        """(C, H, W) of the model's input once active; None marks a dynamic dimension."""
        return self._input_shape

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = feed[INPUT_NAME]
        _check_fixed_shape(f"{self.path}", self._input_shape, images)
        images = np.ascontiguousarray(images, dtype=self._input_type)
        size = self._fixed_batch
        if size is None or len(images) == size:
            return self._run(images)
        return run_batched(self._run, images, size, size)  # a fixed batch size: chunks of it, the last padded

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._session.run(self._output_names, {INPUT_NAME: images})
        return {name: np.asarray(out, dtype=np.float32) for name, out in zip(self._output_names, outputs)}


def _check_fixed_shape(model_name: str, expected: tuple, images: np.ndarray) -> None:
    """Raise one line when ``images`` does not fit a model's fixed (C, H, W) (None = dynamic)."""
    if images.ndim != 4 or any(e is not None and e != a for e, a in zip(expected, images.shape[1:])):
        want = "x".join("?" if e is None else str(e) for e in expected)
        raise HrnextError(f"{model_name} takes images of shape (B, {want}) but got {tuple(images.shape)}: "
                          "use the input size the model was exported with")
