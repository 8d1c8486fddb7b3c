"""Optimizer and learning-rate schedule of a training config.

The schedule is a pure function of the iteration (linear warm-up, then cosine or step decay), so
resuming only needs the iteration: no hidden state can drift between a run and its resume.
"""

from __future__ import annotations

import math

from hrnext_trt.errors import HrnextError
from hrnext_trt.training.config import OptimizerConfig, ScheduleConfig


def build_optimizer(params, cfg: OptimizerConfig):
    """AdamW (the paper's) or Adam (mmpose's HRNet recipe), weight decay on every parameter."""
    import torch

    kinds = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
    return kinds[cfg.type](params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(iteration: int, cfg: ScheduleConfig, iters_per_epoch: int) -> float:
    """Multiplier of the base lr before optimizer step ``iteration`` (0-based)."""
    total = cfg.epochs * iters_per_epoch
    if cfg.policy == "cosine":
        progress = min(iteration / max(total, 1), 1.0)
        decay = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    else:  # step: multiply by gamma after each milestone epoch
        epoch = iteration // iters_per_epoch
        decay = cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if iteration < cfg.warmup_iters:
        # mmpose's linear warm-up: the factor climbs from warmup_ratio to 1 over warmup_iters,
        # applied on top of the regular schedule.
        warm = cfg.warmup_ratio + (1 - cfg.warmup_ratio) * iteration / cfg.warmup_iters
        return warm * decay
    return decay


class LrSchedule:
    """Sets every param group's lr to ``base_lr * lr_factor(iteration)``."""

    def __init__(self, optimizer, cfg: ScheduleConfig, iters_per_epoch: int):
        if iters_per_epoch <= 0:
            raise HrnextError("the training set gives no full batch: lower data.batch_size or add images")
        self.optimizer = optimizer
        self.cfg = cfg
        self.iters_per_epoch = iters_per_epoch
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base

    def set_iteration(self, iteration: int) -> float:
        """Apply the lr of ``iteration``; returns the first group's lr."""
        factor = lr_factor(iteration, self.cfg, self.iters_per_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "iters_per_epoch": self.iters_per_epoch}

    def load_state_dict(self, state: dict) -> None:
        # The base lrs stay the config's: equal to the checkpoint's, unless --force resumes with a new lr.
        if state["iters_per_epoch"] != self.iters_per_epoch:
            raise HrnextError(
                f"the checkpoint was trained with {state['iters_per_epoch']} iterations per epoch, this run has "
                f"{self.iters_per_epoch}: resume with the same data and batch size (world size included)")
