"""How far a mixed-precision training step drifts from float32, in one run: the same step (same
weights, crops, stochastic-depth draws) under fp16 and bf16 autocast vs float32.

    python scripts/amp_drift.py [CONFIG] [--checkpoint PATH] [--device cpu|cuda] [--batch 8,32]
        [--dtypes fp16,bf16] [--modes train,eval] [--out DIR] [--cfg-options KEY=VALUE ...]

    # the CrowdPose fixture (14 joints) on bundled CrowdPose crops, as the README's table:
    python scripts/amp_drift.py --checkpoint ../shared/fixtures/hrnext_tiny_crowdpose.pth --batch 4 \
        --cfg-options data.train.name=crowdpose data.train.root=bundled:crowdpose-mini data.train.split=test \
        "data.input_size=[256,192]"

CONFIG (default: the demo preset on the bundled coco-mini) gives the model, input size, heatmap
sigma, augmentation and activation checkpointing; the crops are its training crops, augmented as
the trainer draws them. Per batch, mode and dtype: heatmaps' relative error and the share of
labelled joints whose heatmap peak stays where float32 puts it; in train mode also the gradients'
cosine and relative error vs float32 (fp16 through the loss scale a GradScaler would settle on,
as the trainer runs it). Prints a table; ``--out`` writes amp_drift.json/.csv/.md.

Why it exists: the recipe's runtime.amp is bf16, and a trained HRNeXt in train mode amplifies
small changes through BatchNorm's batch statistics (the CrowdPose fixture at 256x192 on the CPU,
the command above: one bf16 step's heatmaps 31 % off float32, fp16 2.3 % with gradient cosine
0.998, against floors of 11 % and 1.3 %; eval mode 1.3 % and 0.36 %). Whether that costs accuracy is a
GPU training question; these are the numbers to put beside it on each device.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from hrnext_trt.cli.params import parse_batches, parse_precisions
from hrnext_trt.data.torch_dataset import TopDownDataset, collate_topdown
from hrnext_trt.errors import HrnextError
from hrnext_trt.models import build_pose_model, load_pose_model
from hrnext_trt.reports import Column, Report, check_writable
from hrnext_trt.runners.pytorch import set_tf32
from hrnext_trt.training.config import load_config
from hrnext_trt.training.loss import keypoint_mse_loss
from hrnext_trt.training.validation import load_split

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
LOSS_SCALE = {"fp16": 2.0 ** 16}  # GradScaler's initial scale: fp16 gradients underflow without it
DEMO_PRESET = Path(__file__).resolve().parents[1] / "train" / "presets" / "coco_mini_demo.yaml"


def run_step(model, batch: dict, dtype: str | None, train: bool, seed: int, loss_scale: float = 1.0) -> dict:
    """One forward (and, in train mode, backward of ``loss * loss_scale``) from the model's current
    state, which is restored after (train mode moves BatchNorm's running statistics)."""
    state = copy.deepcopy(model.state_dict())
    model.train(train)
    model.zero_grad(set_to_none=True)
    device = batch["image"].device
    torch.manual_seed(seed)  # the same stochastic-depth draws in every run
    with torch.set_grad_enabled(train), torch.autocast(device.type, dtype=DTYPES.get(dtype), enabled=dtype is not None):
        heatmaps = model(batch["image"])
        loss = keypoint_mse_loss(heatmaps, batch["target"], batch["target_weight"])
    out = {"heatmaps": heatmaps.detach().float(), "loss": loss.item()}
    if train:
        (loss * loss_scale).backward()
        out["grads"] = torch.cat([p.grad.flatten().float() / loss_scale for p in model.parameters()
                                  if p.grad is not None])
    model.load_state_dict(state)
    return out


def scaled_step(model, batch: dict, dtype: str, seed: int) -> dict:
    """fp16 training as the trainer's GradScaler runs it: from 2^16, the scale halves after every
    step whose gradients overflow (that step is skipped), so the step that counts is the first
    finite one."""
    scale = LOSS_SCALE.get(dtype, 1.0)
    while True:
        out = run_step(model, batch, dtype, True, seed, scale)
        if bool(torch.isfinite(out["grads"]).all()) or scale <= 1.0:
            return {**out, "loss_scale": scale}
        scale /= 2


def compare(reference: dict, test: dict, weight: torch.Tensor) -> dict:
    ref, hm = reference["heatmaps"], test["heatmaps"]
    labelled = weight.flatten() > 0
    same_peak = ref.flatten(2).argmax(-1).flatten() == hm.flatten(2).argmax(-1).flatten()
    row = {"heatmap_rel_err": ((hm - ref).norm() / ref.norm()).item(),
           "same_peak_pct": 100.0 * same_peak[labelled].float().mean().item() if labelled.any() else None,
           "loss_fp32": reference["loss"], "loss": test["loss"]}
    if "grads" in test:
        g, g32 = test["grads"], reference["grads"]
        row["loss_scale"] = test.get("loss_scale")
        if bool(torch.isfinite(g).all()):  # else even an unscaled backward overflowed
            row["grad_cosine"] = torch.nn.functional.cosine_similarity(g, g32, dim=0).item()
            row["grad_rel_err"] = ((g - g32).norm() / g32.norm()).item()
    return row


def drift_rows(model, batches: dict[int, dict], dtypes: list[str], modes: list[str], seed: int) -> list[dict]:
    rows = []
    for size, batch in batches.items():
        for mode in modes:
            train = mode == "train"
            reference = run_step(model, batch, None, train, seed)
            for dtype in dtypes:
                row = {"batch": size, "mode": mode, "dtype": dtype}
                test = scaled_step(model, batch, dtype, seed) if train else run_step(model, batch, dtype, False, seed)
                row.update(compare(reference, test, batch["target_weight"]))
                # The floor: float32 throughout, only the input rounded to the dtype. The network's own
                # response to a perturbation that small, which no precision choice can remove.
                rounded = {**batch, "image": batch["image"].to(DTYPES[dtype]).float()}
                floor = compare(reference, run_step(model, rounded, None, train, seed), batch["target_weight"])
                row["floor_heatmap_rel_err"] = floor["heatmap_rel_err"]
                row["floor_grad_cosine"] = floor.get("grad_cosine")
                rows.append(row)
                print(f"  batch {size} {mode} {dtype}: heatmaps {row['heatmap_rel_err']:.4f} off", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEMO_PRESET))
    parser.add_argument("--checkpoint", help="weights to measure (default: fresh weights of the config's arch)")
    parser.add_argument("--arch", help="an mmpose checkpoint's architecture (default: the config's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch", default="8,32")
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--modes", default="train,eval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for amp_drift.json, .csv and .md")
    parser.add_argument("--cfg-options", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        dtypes = parse_precisions(args.dtypes, tuple(DTYPES), "--dtypes")
        modes = parse_precisions(args.modes, ("train", "eval"), "--modes")
        sizes = parse_batches(args.batch)
        if min(sizes) < 2:
            raise HrnextError(f"--batch {args.batch}: each size must be >= 2 (BatchNorm's batch statistics need "
                              "two samples)")
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise HrnextError("--device cuda but PyTorch sees no GPU")
        cfg = load_config(args.config, args.cfg_options)
        check_writable(args.out, "--out", folder=True)  # before the work, not after it
        data = TopDownDataset(load_split(cfg.data.train), cfg.data.input_size, train=True,
                              augment=cfg.data.augmentation, sigma=cfg.data.sigma)
        joints = data.dataset.meta.num_joints
        if args.checkpoint:
            # A project checkpoint records its model; an mmpose one takes the config's (or --arch).
            model = load_pose_model(args.checkpoint, arch=args.arch or cfg.model.arch, num_joints=joints)
        else:
            torch.manual_seed(args.seed)
            model = build_pose_model(args.arch or cfg.model.arch, joints)
    except (HrnextError, ValueError, OSError) as exc:
        print(f"amp_drift: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        # float32 must be IEEE float32: PyTorch lets cuDNN round float32 convolutions to TF32 by
        # default (fp16's 10-bit mantissa), which would make the reference and the floor half-precision.
        set_tf32(False)
    model = model.to(device).set_grad_checkpointing(cfg.model.activation_checkpointing)
    torch.manual_seed(args.seed)  # the augmentation draws
    samples = [data[i % len(data)] for i in range(max(sizes))]
    batches = {}
    for size in sizes:
        batch = collate_topdown(samples[:size])
        batches[size] = {k: batch[k].to(device) for k in ("image", "target", "target_weight")}
    print(f"{cfg.model.arch} {'from ' + args.checkpoint if args.checkpoint else '(fresh weights)'} on {device}, "
          f"{cfg.data.input_size[0]}x{cfg.data.input_size[1]} crops of {cfg.data.train.name} {cfg.data.train.split}",
          file=sys.stderr)
    rows = drift_rows(model, batches, dtypes, modes, args.seed)
    report = Report(
        title=f"Mixed precision vs float32, one step of {cfg.model.arch} on {device}",
        columns=[Column("batch", "batch"), Column("mode", "mode"), Column("dtype", "autocast"),
                 Column("heatmap_rel_err", "heatmaps rel err", ".4f"),
                 Column("same_peak_pct", "peaks as fp32 %", ".1f"),
                 Column("grad_cosine", "grad cosine", ".4f"), Column("grad_rel_err", "grad rel err", ".4f"),
                 Column("floor_heatmap_rel_err", "floor: rel err", ".4f"),
                 Column("floor_grad_cosine", "floor: grad cosine", ".4f"),
                 Column("loss_scale", "loss scale", ".0f"), Column("loss_fp32", "loss fp32", ".3e"),
                 Column("loss", "loss", ".3e")],
        rows=rows,
        footnotes=["train: batch statistics in BatchNorm (the recipe's step); eval: running statistics; float32 "
                   "is IEEE float32 (no TF32 on a GPU)",
                   "floor: float32 with only the input rounded to the dtype (the network's own sensitivity)",
                   "loss scale: the GradScaler's after the steps it would skip (from 2^16, halved per overflow)"],
        meta={"config": str(args.config), "checkpoint": args.checkpoint, "device": str(device),
              "torch": torch.__version__, "activation_checkpointing": cfg.model.activation_checkpointing})
    print(report.table())
    if args.out:
        for path in report.write_all(args.out, "amp_drift").values():
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
