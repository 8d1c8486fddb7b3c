"""Click parameter types: every comma list, size, precision list and dataset choice of the commands
is parsed here, once, at the edge; the library configs then take typed values.

A bad value is one line naming the flag (``HrnextError``: the CLI prints ``error: ...``, exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import click

from hrnext_trt.contract import BACKENDS, DEVICES, EXPORT_PRECISIONS, validate_input_size
from hrnext_trt.engines.builders import parse_compute_capabilities
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import DATASETS
from hrnext_trt.predict.detector import FAMILIES
from hrnext_trt.runners.pytorch import TorchMode


def parse_input_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> (256, 192): height x width, both multiples of 4 (``contract.INPUT_MULTIPLE``)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise HrnextError(f"input size {text!r} is not HEIGHTxWIDTH: write e.g. 256x192") from None
    return validate_input_size((height, width))


def parse_backends(text: str | None, flag: str = "--backends") -> list[str]:
    """``"pytorch,onnxruntime"`` -> validated list; None or empty means every backend."""
    if not text:
        return list(BACKENDS)
    names = _items(text)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise HrnextError(f"unknown backend {unknown[0]!r} in {flag}: choose from {', '.join(BACKENDS)}")
    return names


def parse_batches(text: str, flag: str = "--batch") -> tuple[int, ...]:
    """``"1,8,32"`` -> (1, 8, 32): positive batch sizes."""
    try:
        batches = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise HrnextError(f"{flag} {text!r} is not a comma-separated list of batch sizes: write e.g. 1,8,32") from None
    if min(batches) < 1:
        raise HrnextError(f"{flag} needs positive batch sizes, got {text}")
    repeated = sorted({b for b in batches if batches.count(b) > 1})
    if repeated:  # each size is one group of rows: a repeat would be dropped without a word
        raise HrnextError(f"{flag} {text} names batch {', '.join(map(str, repeated))} more than once: give each "
                          "size once")
    return batches


def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """``"1,16,32"`` -> (min, opt, max) batch of the engines' optimisation profile (ordered by ExportConfig)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise HrnextError(f"batch profile {text!r} is not MIN,OPT,MAX: write e.g. 1,16,32") from None


def parse_precisions(text: str, choices: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """``"fp32,fp16"`` -> ("fp32", "fp16"), each one of ``choices``."""
    names = tuple(_items(text))
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise HrnextError(f"{flag} {text!r}: choose from {', '.join(choices)}")
    return names


def _items(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


class Parsed(click.ParamType):
    """A text option turned into a typed value by ``parse(text, flag)``; its errors are one line."""

    def __init__(self, name: str, parse: Callable[[str, str], object]):
        self.name = name
        self._parse = parse

    def get_metavar(self, param, ctx=None) -> str:
        return self.name

    def convert(self, value, param, ctx):
        if not isinstance(value, str):  # a typed default, or already converted
            return value
        return self._parse(value, param.opts[0] if param is not None else self.name)


def _number(kind: type, zero_ok: bool, most: float = math.inf) -> Callable[[str, str], object]:
    def parse(text: str, flag: str):
        try:
            value = kind(text)
        except ValueError:
            raise HrnextError(f"{flag} {text!r} is not a number") from None
        # Written as a positive test: NaN fails every comparison, and inf is no count, size or threshold.
        if not (math.isfinite(value) and (0 <= value if zero_ok else 0 < value) and value <= most):
            if most < math.inf:
                bounds = f"a number from 0 to {most:g}"
            elif kind is float:
                bounds = "a finite number >= 0" if zero_ok else "a finite positive number"
            else:
                bounds = ">= 0" if zero_ok else "positive"
            raise HrnextError(f"{flag} must be {bounds}, got {text}")
        return value

    return parse


INPUT_SIZE = Parsed("HxW", lambda text, flag: parse_input_size(text))
BACKEND_LIST = Parsed("LIST", lambda text, flag: tuple(parse_backends(text, flag)))
BATCH_SIZES = Parsed("LIST", parse_batches)
BATCH_PROFILE = Parsed("MIN,OPT,MAX", lambda text, flag: parse_batch_profile(text))
COMPUTE_CAPABILITIES = Parsed("CC[,CC...]", lambda text, flag: parse_compute_capabilities(text))
EXPORT_PRECISION_LIST = Parsed("LIST", lambda text, flag: parse_precisions(text, EXPORT_PRECISIONS, flag))
# PyTorch modes: a precision plus "+flags" (runners.pytorch.TorchMode), checked here, parsed by the library.
TORCH_PRECISION_LIST = Parsed("LIST", lambda text, flag: tuple(TorchMode.parse(t).label for t in _items(text)))
POSITIVE_INT = Parsed("INTEGER", _number(int, zero_ok=False))
COUNT = Parsed("INTEGER", _number(int, zero_ok=True))
POSITIVE_FLOAT = Parsed("FLOAT", _number(float, zero_ok=False))
FRACTION = Parsed("FLOAT", _number(float, zero_ok=True, most=1))  # score and IoU thresholds
DEVICE = click.Choice(["auto", *DEVICES])  # auto: the GPU where an NVIDIA driver sees one
# Every dataset the keypoint metadata knows (a new dataset joins the choices by registering there).
DATASET = click.Choice(sorted(DATASETS))
DET_FAMILY = click.Choice(FAMILIES)  # a detector ONNX's preprocessing
DET_FAMILY_HELP = ("preprocessing (default: Ultralytics for the raw layout; RTMDet if the file's or its folder's "
                   "name, or mmdeploy's pipeline.json beside it, says rtmdet, else YOLOX, for the end-to-end layout).")


def model_record_options(command):
    """``--arch`` and ``--joints``: what the paper's checkpoints (mmpose layout) do not record about their model."""
    command = click.option("--joints", "num_joints", type=POSITIVE_INT, default=None,
                           help="Joint count of such a checkpoint (14 CrowdPose, 17 COCO/OCHuman/PoseTrack, "
                                "16 MPII).")(command)
    return click.option("--arch", default=None, help="Model arch of a checkpoint that does not record it (the "
                                                     "paper's mmpose files), e.g. hrnext_s.")(command)
