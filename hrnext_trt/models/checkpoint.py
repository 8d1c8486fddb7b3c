"""Reading checkpoints: the project's own format and the paper's mmpose 0.x files.

A project checkpoint records its model (``arch``, ``num_joints``) and holds this project's module
names. An mmpose checkpoint holds ``backbone.*`` / ``keypoint_head.final_layer.*`` keys and no
model description, so the caller names the arch and joint count; its keys are remapped by
:func:`remap_mmpose_state_dict`. Loading is strict: every tensor must fit, none may be missing.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from hrnext_trt.errors import HrnextError
from hrnext_trt.model_spec import ModelSpec
from hrnext_trt.models.pose_model import PoseModel, arch_entry, build_pose_model

CHECKPOINT_FORMAT = "hrnext-trt"
CHECKPOINT_FORMAT_VERSION = 1
_HEAD_KEY = "head.weight"
_MMPOSE_HEAD = "keypoint_head.final_layer."  # the head's prefix in mmpose files; ours is "head."

_NORMALISED = "_hrnext_trt_weights_read"

log = logging.getLogger(__name__)


def make_checkpoint(model: PoseModel, input_size: tuple[int, int], dataset: str, **state: Any) -> dict:
    """The project's checkpoint dict of ``model`` (what :func:`load_pose_model` reads): its ``ModelSpec``
    as top-level keys; training adds its own state (config, epoch, optimizer, RNG ...) as keyword arguments."""
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **ModelSpec.of(model.arch, model.num_joints, input_size, dataset).to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **state,
    }


def write_arch_checkpoint(arch: str, num_joints: int, input_size: tuple[int, int], dataset: str,
                          path: str | Path, seed: int = 0) -> Path:
    """A checkpoint (project format) of a freshly initialised ``arch``: what bench times for an arch name."""
    torch.manual_seed(seed)
    model = build_pose_model(arch, num_joints).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(make_checkpoint(model, input_size, dataset), path)
    return path


def _safe_globals() -> list:
    # mmpose 0.x files keep numpy scalars in their ``meta``; allow those, nothing executable.
    # Files written under numpy 1 name ``numpy.core``, under numpy 2 ``numpy._core``.
    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray

    names = [(fn, f"{mod}.multiarray.{fn.__name__}") for fn in (multiarray.scalar, multiarray._reconstruct)
             for mod in ("numpy.core", "numpy._core")]
    return [np.dtype, np.ndarray, *names, *{type(np.dtype(t)) for t in "?bhilqBHILQefdgFD"}]


# Export artifacts handed where the checkpoint goes: named so the fix is plain (only once loading failed,
# so a checkpoint that happens to carry such a suffix still loads).
_ARTIFACTS = {".onnx": "an ONNX model", ".engine": "a TensorRT engine", ".plan": "a TensorRT engine"}


def _unreadable(path: Path, cause: str = "") -> str:
    artifact = _ARTIFACTS.get(path.suffix.lower())
    if artifact is None:
        return f"cannot read checkpoint {path}: not a PyTorch checkpoint or truncated{cause}"
    return (f"cannot read checkpoint {path}: it is {artifact}, not a PyTorch checkpoint; pass the .pth it was "
            "exported from (the export folder's manifest.json names it under source_checkpoint)")


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict at ``path``, read with ``weights_only`` (tensors and plain data)."""
    path = Path(path)
    if not path.is_file():
        raise HrnextError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle at all; torch's advice to load it unsafely is not for us
            raise HrnextError(_unreadable(path)) from None
        raise HrnextError(f"cannot read checkpoint {path} safely: it holds a {found.group(1)} object; re-save it "
                          "with only tensors and plain Python data") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError, zipfile errors... for a bad file
        raise HrnextError(_unreadable(path, f" ({type(exc).__name__})")) from None
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        ckpt = {"state_dict": ckpt}  # a bare state_dict (torch.save(model.state_dict())): --arch/--joints
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        what = f"a dict of {', '.join(map(str, list(ckpt)[:4]))}" if isinstance(ckpt, dict) else \
            f"a {type(ckpt).__name__}"
        raise HrnextError(f"{path} is a PyTorch file but not a model checkpoint: it holds {what}, and no "
                          "state_dict or tensors")
    return normalise_weights(ckpt, str(path))


def normalise_weights(ckpt: dict, source: str) -> dict:
    """The checkpoint with the weights the model loads as ``state_dict``, in a layout the loaders know;
    each choice the file leaves open is said (info). Other tools' files: timm's ``state_dict_ema`` is
    taken over ``state_dict`` (timm loads it by default); mmcv's and mmengine's EMA hooks swap the
    averaged weights into the model before saving, so their ``state_dict`` is already the average
    (mmcv's ``ema_*`` buffers, the raw copies, are dropped); DataParallel's ``module.`` prefix is
    removed; the official HRNet code's keys (``conv1.``, ``stage2.``, ``final_layer.``) are read as
    mmpose's HRNet."""
    if ckpt.get("format") == CHECKPOINT_FORMAT or ckpt.get(_NORMALISED):
        return ckpt
    ckpt = {**ckpt, _NORMALISED: True}  # read once, said once (a dict read from a file is passed on)
    ema = ckpt.get("state_dict_ema")
    if isinstance(ema, dict) and ema and all(isinstance(v, torch.Tensor) for v in ema.values()):
        log.info("%s: loading its EMA weights (state_dict_ema), as timm does; its state_dict is not used", source)
        ckpt["state_dict"] = ema
    elif isinstance(ckpt.get("ema_state_dict"), dict):
        log.info("%s: loading its state_dict, which mmengine's EMA hook saves as the averaged weights "
                 "(ema_state_dict holds the raw ones)", source)
    state = ckpt["state_dict"]
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel / DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    copies = [k for k in state if k.startswith("ema_") and "." not in k]  # mmcv EMAHook's buffers
    if copies:
        log.info("%s: dropping %d mmcv EMA buffers (ema_*): its model weights are the averaged ones mmcv's "
                 "EMA hook swapped in before saving", source, len(copies))
        state = {k: v for k, v in state.items() if k not in copies}
    if "final_layer.weight" in state and "conv1.weight" in state and any(k.startswith("stage2.") for k in state):
        log.info("%s: reading the official HRNet code's layout as mmpose's HRNet", source)
        state = {(_MMPOSE_HEAD + k[len("final_layer."):]) if k.startswith("final_layer.") else f"backbone.{k}": v
                 for k, v in state.items()}
    ckpt["state_dict"] = state
    return ckpt


def checkpoint_spec(ckpt: dict) -> ModelSpec:
    """The ``ModelSpec`` a checkpoint records (every field None for the paper's mmpose files)."""
    return ModelSpec.from_dict(ckpt) if ckpt.get("format") == CHECKPOINT_FORMAT else ModelSpec()


def recipe_flip_test(ckpt: dict) -> bool:
    """Whether the checkpoint's recipe validates with flip test; True when it does not say (the paper's
    protocol). A model trained without mirrored crops (the coco-mini demo preset) is blurred by it."""
    return bool((ckpt.get("config") or {}).get("runtime", {}).get("flip_test", True))


def recipe_val_root(ckpt: dict) -> str | None:
    """The dataset root the checkpoint's training validated on, as its config wrote it (a path, or
    ``bundled:<name>``); None where it records no training config, or validated on another dataset
    than it trained on (one of the same joints)."""
    data = (ckpt.get("config") or {}).get("data") or {}
    train, val = data.get("train") or {}, data.get("val") or {}
    root = val.get("root")
    return root if isinstance(root, str) and root and val.get("name") == train.get("name") else None


def checkpoint_meta(ckpt: dict) -> dict:
    """What a checkpoint says about itself: format, arch, num_joints, input_size, dataset, epoch
    (None where the file does not record it, as in mmpose files)."""
    if ckpt.get("format") == CHECKPOINT_FORMAT:
        meta = {k: ckpt.get(k) for k in ("arch", "num_joints", "input_size", "dataset", "epoch")}
        return {"format": CHECKPOINT_FORMAT, **meta}
    unknown = {"arch": None, "num_joints": None, "input_size": None, "dataset": None}
    if _HEAD_KEY in ckpt.get("state_dict", {}):  # this project's module names without the record around them
        return {"format": "state_dict", **unknown, "epoch": None}
    if any(k.startswith(("backbone.", "keypoint_head.")) for k in ckpt.get("state_dict", {})):
        return {"format": "mmpose", **unknown, "epoch": (ckpt.get("meta") or {}).get("epoch")}
    return {"format": None}


def remap_mmpose_state_dict(state_dict: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """mmpose 0.x keys of the paper's code (or mmpose HRNet) -> this project's module names."""
    rules = (("^" + re.escape(_MMPOSE_HEAD), "head."), *arch_entry(arch).mmpose_key_rules)
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _shape(t: Any) -> str:
    return "(" + ",".join(str(d) for d in t.shape) + ")"


def _check_fit(state_dict: dict, model: PoseModel, source: str, head: bool = True) -> None:
    """One line naming what does not fit, or nothing; ``head=False``: the head's tensors are not expected."""
    expected = {k: v for k, v in model.state_dict().items() if head or not k.startswith("head.")}
    if _HEAD_KEY in state_dict and state_dict[_HEAD_KEY].shape[0] != model.num_joints:
        raise HrnextError(f"checkpoint {source} has {state_dict[_HEAD_KEY].shape[0]} joints, model {model.arch} "
                          f"was asked for {model.num_joints}")
    # BatchNorm's step counters, which torch fills in itself (older saves and slimmed releases lack them).
    missing = [k for k in expected if k not in state_dict and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    differ = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    problems = []
    if differ:
        k = differ[0]
        problems.append(f"{len(differ)} tensors differ in shape, e.g. {k}: {_shape(state_dict[k])} in the "
                        f"checkpoint vs {_shape(expected[k])} in the model")
    if missing:
        problems.append(f"{len(missing)} tensors missing, e.g. {missing[0]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors, e.g. {unexpected[0]}")
    if problems:
        raise HrnextError(f"checkpoint {source} does not fit {model.arch}: {'; '.join(problems)}")


def load_pose_model(checkpoint: str | Path | dict, arch: str | None = None,
                    num_joints: int | None = None, source: str | Path | None = None,
                    exported: ModelSpec | None = None) -> PoseModel:
    """A model in eval mode with the checkpoint's weights (project or mmpose 0.x format).

    ``arch`` / ``num_joints`` are required for mmpose files (``exported``, the spec of an export made
    from the file, stands in for those not given) and, for project files, must agree with what the
    checkpoint records when given. ``source``: the file a dict was read from, for the error messages.
    """
    if source is None:
        source = "(in memory)" if isinstance(checkpoint, dict) else checkpoint
    source = str(source)
    ckpt = normalise_weights(checkpoint, source) if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    meta = checkpoint_meta(ckpt)
    if meta["format"] == CHECKPOINT_FORMAT:
        version = ckpt.get("format_version", CHECKPOINT_FORMAT_VERSION)
        if version > CHECKPOINT_FORMAT_VERSION:
            raise HrnextError(f"checkpoint {source} has format version {version}; this hrnext-trt reads up to "
                              f"{CHECKPOINT_FORMAT_VERSION}: upgrade hrnext-trt")
        if arch is not None and arch != meta["arch"]:
            raise HrnextError(f"checkpoint {source} holds {meta['arch']}, model {arch} was asked for: drop --arch "
                              "(the checkpoint records its model), or pass a checkpoint of that model")
        if num_joints is not None and int(num_joints) != meta["num_joints"]:
            raise HrnextError(f"checkpoint {source} has {meta['num_joints']} joints, model {meta['arch']} was "
                              f"asked for {num_joints}")
        model = build_pose_model(meta["arch"], meta["num_joints"])
        state_dict = ckpt["state_dict"]
    elif meta["format"] in ("mmpose", "state_dict"):
        if exported is not None:
            arch, num_joints = arch or exported.arch, num_joints or exported.num_joints
        if arch is None or num_joints is None:
            what = "an mmpose file" if meta["format"] == "mmpose" else "a bare state_dict"
            raise HrnextError(f"checkpoint {source} is {what}, which does not record its model: pass --arch and "
                              "--joints (e.g. --arch hrnext_s --joints 14 for CrowdPose)")
        model = build_pose_model(arch, num_joints)
        state_dict = ckpt["state_dict"]
        if meta["format"] == "mmpose":
            state_dict = remap_mmpose_state_dict(state_dict, arch)
    else:
        raise HrnextError(f"{source} is neither an hrnext-trt nor an mmpose 0.x checkpoint nor a state_dict of "
                          "these models (no format field, no backbone.* or head.weight keys)")
    _check_fit(state_dict, model, source)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def load_initial_weights(model: PoseModel, checkpoint: str | Path) -> str | None:
    """Start ``model`` (training's ``--load-from``) from a checkpoint of the same arch: every tensor when
    it predicts the same joints; otherwise (a COCO model to fine-tune on CrowdPose) every tensor but the
    head's, which starts fresh, and the returned line says so. A project checkpoint must hold the arch."""
    ckpt = read_checkpoint(checkpoint)
    kind = checkpoint_meta(ckpt)["format"]
    head = ckpt.get("state_dict", {}).get(_MMPOSE_HEAD + "weight" if kind == "mmpose" else _HEAD_KEY)
    if kind in ("mmpose", "state_dict") and head is None:  # a backbone's weights (pretrained, or cut from a model)
        state = ckpt["state_dict"]
        state = remap_mmpose_state_dict(state, model.arch) if kind == "mmpose" else state
        _check_fit(state, model, str(checkpoint), head=False)
        missing, _ = model.load_state_dict(state, strict=False)
        assert all(k.startswith("head.") for k in missing), missing
        return f"--load-from {checkpoint} holds no head: its backbone is loaded, the head starts fresh"
    joints = None if kind == CHECKPOINT_FORMAT or head is None else int(head.shape[0])
    weights = load_pose_model(ckpt, arch=model.arch, num_joints=joints, source=checkpoint)
    if weights.num_joints == model.num_joints:
        model.load_state_dict(weights.state_dict())
        return None
    trunk = {k: v for k, v in weights.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(trunk, strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing), (missing, unexpected)
    return (f"--load-from {checkpoint} predicts {weights.num_joints} joints and this model {model.num_joints}: "
            "its backbone is loaded, the head (the last 1x1 convolution) starts fresh")
