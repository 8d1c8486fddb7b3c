"""Training configuration: YAML files that compose, validated once into frozen dataclasses.

A config file may name other files under ``_base_`` (a path or a list of paths, relative to the
file); they are merged in order, depth first, and the file's own keys win. ``--cfg-options
a.b=c`` overrides come last, their values parsed as YAML. The merged dict is then checked
against the dataclasses below: an unknown key, a missing key or a wrong type is one
``HrnextError`` line naming the key and the file. Nothing past :func:`load_config` sees a dict.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hrnext_trt.contract import INPUT_MULTIPLE
from hrnext_trt.data.transforms import AugmentConfig
from hrnext_trt.errors import HrnextError, first_line

BASE_KEY = "_base_"


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # one of hrnext_trt.models.ARCHS
    activation_checkpointing: bool = False  # recompute blocks in backward: less memory, ~30% slower
    sync_bn: bool = True  # SyncBatchNorm in multi-process CUDA runs
    load_from: str | None = None  # initial weights (e.g. a COCO checkpoint for PoseTrack); --load-from wins


@dataclass(frozen=True)
class SplitConfig:
    """One dataset split, as ``hrnext_trt.data.load_dataset`` takes it."""

    name: str  # a dataset of hrnext_trt.keypoints.DATASETS
    root: str  # dataset root; "bundled:<name>" is the sample data inside the package
    split: str
    boxes: Literal["gt", "det"] = "gt"
    det_file: str | None = None
    det_score_thr: float | None = None  # detector boxes kept from this score; None: the protocol's


@dataclass(frozen=True)
class DataConfig:
    input_size: tuple[int, int]  # (H, W)
    train: SplitConfig
    val: SplitConfig
    batch_size: int  # per process (per GPU)
    val_batch_size: int = 32
    num_workers: int = 2
    sigma: float = 2.0
    cache_images: bool = False  # decode the training images once and keep them in memory (small sets)
    # The data pipeline's own frozen dataclass: the YAML keys are its fields.
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class OptimizerConfig:
    type: Literal["adamw", "adam"]
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None  # max global grad norm; None: no clipping


@dataclass(frozen=True)
class ScheduleConfig:
    epochs: int
    policy: Literal["cosine", "step"]
    warmup_iters: int = 500
    warmup_ratio: float = 0.001  # warm-up starts at lr * warmup_ratio
    min_lr_ratio: float = 0.01  # cosine: final lr = lr * min_lr_ratio
    milestones: tuple[int, ...] = ()  # step: epochs after which lr *= gamma
    gamma: float = 0.1


@dataclass(frozen=True)
class RuntimeConfig:
    seed: int = 0
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16"] = "bf16"  # CUDA mixed precision; CPU runs float32
    checkpoint_interval: int = 5  # epochs
    eval_interval: int = 10  # epochs; the best AP is kept as best.pth
    flip_test: bool = True
    log_interval: int = 50  # iterations between log.jsonl / TensorBoard records


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig
    data: DataConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    source: str = field(default="<dict>", compare=False)  # where it was read from (for messages)

    @property
    def dataset(self) -> str:
        """The keypoint definition the model predicts (the training set's)."""
        return self.data.train.name

    def to_dict(self) -> dict:
        """Plain YAML/JSON form; ``config_from_dict(cfg.to_dict())`` gives back ``cfg``."""
        out = _plain(dataclasses.asdict(self))
        out.pop("source")
        return out

    def replace(self, **sections: Any) -> "TrainConfig":
        return dataclasses.replace(self, **sections)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- YAML ---------------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``4e-3`` as a float (YAML 1.1 wants ``4.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise HrnextError(f"{where}: not valid YAML ({first_line(exc)})") from None


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_dict(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The merged dict of a config file and its ``_base_`` files (not validated)."""
    path = Path(path).resolve()
    if path in _chain:
        raise HrnextError(f"{path}: _base_ includes itself ({' -> '.join(p.name for p in _chain + (path,))})")
    if not path.is_file():
        raise HrnextError(f"config file {path} not found: give a YAML file from train/ or your own")
    raw = _parse_yaml(path.read_text(encoding="utf-8"), str(path))
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise HrnextError(f"{path}: a config file must be a YAML mapping, got {type(raw).__name__}")
    bases = raw.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise HrnextError(f"{path}: {BASE_KEY} must be a path or a list of paths relative to the file")
    merged: dict = {}
    for base in bases:
        merged = _deep_merge(merged, read_config_dict(path.parent / base, _chain + (path,)))
    return _deep_merge(merged, raw)


def apply_overrides(config: dict, options: typing.Iterable[str]) -> dict:
    """Apply ``a.b=c`` strings (``c`` parsed as YAML) to a config dict."""
    for option in options:
        key, sep, text = option.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise HrnextError(f"--cfg-options {option!r}: write key=value with a dotted key, e.g. optimizer.lr=1e-3")
        value = _parse_yaml(text, f"--cfg-options {option!r}")
        *parents, leaf = key.split(".")
        nested: dict = {leaf: value}
        for part in reversed(parents):
            nested = {part: nested}
        config = _deep_merge(config, nested)
    return config


# --- validation ---------------------------------------------------------------------------------

def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} " + "/".join(_describe(a) for a in args)
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """``value`` checked against type ``tp`` (dataclasses recursively); raises one line."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise HrnextError(f"{_at(source, key)}: {key} must be a mapping, got {value!r}")
        return _build(tp, value, key, source)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, key, source)
            except HrnextError:
                continue
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    elif tp is type(None):
        if value is None:
            return None
    elif tp is float:
        # NaN and inf pass every range check (nan > 0 is False, inf > 0 is True): refused here.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise HrnextError(f"{_at(source, key)}: {key} must be a finite number, got {value}")
            return float(value)
    elif tp in (int, str, bool):
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            return value
    else:  # pragma: no cover - a type this module does not declare
        raise TypeError(f"unsupported config type {tp!r}")
    raise HrnextError(f"{_at(source, key)}: {key} must be {_describe(tp)}, got {value!r}")


def _build(cls: type, values: dict, prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(values) - set(fields))
    where = f"{prefix}." if prefix else ""
    if unknown:
        raise HrnextError(f"{_at(source, where + unknown[0])}: unknown key '{where}{unknown[0]}'; "
                          f"known keys{' under ' + prefix if prefix else ''}: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in values:
            kwargs[name] = _convert(values[name], hints[name], where + name, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise HrnextError(f"{source}: missing key {where}{name} ({_describe(hints[name])})")
    return cls(**kwargs)


def _check_values(cfg: TrainConfig, src: str) -> None:
    """Range checks the types cannot express."""
    h, w = cfg.data.input_size
    checks = [
        (h > 0 and w > 0 and h % INPUT_MULTIPLE == 0 and w % INPUT_MULTIPLE == 0,
         f"data.input_size {[h, w]} must be positive multiples of {INPUT_MULTIPLE} (heatmaps are 1/4 of the input)"),
        (cfg.data.batch_size >= 2, "data.batch_size must be >= 2 (BatchNorm needs two samples per batch)"),
        (cfg.data.val_batch_size > 0, "data.val_batch_size must be > 0"),
        (cfg.data.num_workers >= 0, "data.num_workers must be >= 0"),
        (cfg.optimizer.lr > 0, "optimizer.lr must be > 0"),
        (cfg.schedule.epochs > 0, "schedule.epochs must be > 0"),
        (cfg.schedule.warmup_iters >= 0, "schedule.warmup_iters must be >= 0"),
        (cfg.schedule.policy != "step" or len(cfg.schedule.milestones) > 0,
         "schedule.milestones must list epochs when schedule.policy is step"),
        (cfg.runtime.checkpoint_interval > 0, "runtime.checkpoint_interval must be > 0"),
        (cfg.runtime.eval_interval > 0, "runtime.eval_interval must be > 0"),
        (cfg.runtime.log_interval > 0, "runtime.log_interval must be > 0"),
        # numpy seeds its generators with 32 bits: another seed failed with a traceback at the first epoch.
        (0 <= cfg.runtime.seed < 2 ** 32, f"runtime.seed must be from 0 to {2 ** 32 - 1}, got {cfg.runtime.seed}"),
        # Values torch refuses only mid-run (betas, weight decay), or that train silently wrong:
        # sigma 0 divides by zero, a negative one gives empty targets; a negative warm-up ratio a
        # negative learning rate; grad_clip 0 clips every gradient to nothing.
        (cfg.data.sigma > 0, f"data.sigma must be > 0 (the target Gaussians' spread in heatmap pixels), got "
                             f"{cfg.data.sigma}"),
        (all(0 <= b < 1 for b in cfg.optimizer.betas),
         f"optimizer.betas must be two numbers from 0 to below 1, got {list(cfg.optimizer.betas)}"),
        (cfg.optimizer.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {cfg.optimizer.weight_decay}"),
        (cfg.optimizer.grad_clip is None or cfg.optimizer.grad_clip > 0,
         f"optimizer.grad_clip must be > 0 (a largest gradient norm), or null for none, got "
         f"{cfg.optimizer.grad_clip}"),
        (0 <= cfg.schedule.warmup_ratio <= 1, f"schedule.warmup_ratio must be from 0 to 1 (warm-up starts at lr x "
                                              f"it), got {cfg.schedule.warmup_ratio}"),
        (0 <= cfg.schedule.min_lr_ratio <= 1, f"schedule.min_lr_ratio must be from 0 to 1 (cosine ends at lr x it), "
                                              f"got {cfg.schedule.min_lr_ratio}"),
        (0 < cfg.schedule.gamma <= 1, f"schedule.gamma must be above 0 and at most 1 (step: lr x gamma at each "
                                      f"milestone), got {cfg.schedule.gamma}"),
        (all(m > 0 for m in cfg.schedule.milestones),
         f"schedule.milestones must be epochs > 0, got {list(cfg.schedule.milestones)}"),
    ]
    augment = cfg.data.augmentation
    for name in ("shift_prob", "flip_prob", "half_body_prob", "rotation_prob"):
        value = getattr(augment, name)
        checks.append((0 <= value <= 1, f"data.augmentation.{name} must be a probability from 0 to 1, got {value}"))
    checks += [
        (augment.shift_factor >= 0, f"data.augmentation.shift_factor must be >= 0, got {augment.shift_factor}"),
        (0 <= augment.scale_factor < 1, f"data.augmentation.scale_factor must be from 0 to below 1 (scales 1 +- it), "
                                        f"got {augment.scale_factor}"),
        (augment.rotation_factor >= 0, f"data.augmentation.rotation_factor must be >= 0 (degrees), got "
                                       f"{augment.rotation_factor}"),
        (augment.half_body_min_joints is None or augment.half_body_min_joints >= 1,
         f"data.augmentation.half_body_min_joints must be >= 1, or null for the dataset's, got "
         f"{augment.half_body_min_joints}"),
    ]
    for split in ("train", "val"):
        thr = getattr(cfg.data, split).det_score_thr
        checks.append((thr is None or 0 <= thr <= 1, f"data.{split}.det_score_thr must be from 0 to 1, or null for "
                                                      f"the protocol's, got {thr}"))
    for ok, message in checks:
        if not ok:
            raise HrnextError(f"{_at(src, message.split()[0])}: {message}")  # every message starts with its key


def config_from_dict(values: dict, source: str = "<dict>") -> TrainConfig:
    """Validate a plain dict (e.g. a checkpoint's ``config``) into a :class:`TrainConfig`."""
    if not isinstance(values, dict):
        raise HrnextError(f"{source}: a config must be a mapping, got {type(values).__name__}")
    cfg = dataclasses.replace(_build(TrainConfig, values, "", source), source=str(source))
    _check_values(cfg, source)
    return cfg


class _Origin(str):
    """A config file's name that also knows which keys ``--cfg-options`` set, so a bad value is
    blamed on the option that gave it, not on the file."""

    def __new__(cls, path: str, overrides: dict[str, str] | None = None):
        origin = super().__new__(cls, path)
        origin.overrides = overrides or {}
        return origin

    def of(self, key: str) -> str:
        for option_key, option in reversed(list(self.overrides.items())):  # the last override wins
            if key == option_key or key.startswith((option_key + ".", option_key + "[")):
                return f"--cfg-options {option}"
        return str(self)


def _at(source: str, key: str) -> str:
    """Where ``key``'s value came from: the file, or the ``--cfg-options`` word that set it."""
    return source.of(key) if isinstance(source, _Origin) else source


def load_config(path: str | Path, options: typing.Iterable[str] = ()) -> TrainConfig:
    """Read ``path`` (with its ``_base_`` files), apply ``key=value`` overrides, validate."""
    options = list(options)
    values = apply_overrides(read_config_dict(path), options)
    overrides = {option.partition("=")[0]: option for option in options}
    return config_from_dict(values, source=_Origin(str(path), overrides))


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
