"""``hrnext-trt train CONFIG``: train from a YAML config (single process or under torchrun)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hrnext_trt.contract import DEVICES
from hrnext_trt.errors import HrnextError
from hrnext_trt.training import load_config, train
from hrnext_trt.training.logging import LOG_NAME
from hrnext_trt.training.work_dir import CONFIG_NAME


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
# More KEY=VALUE words after --cfg-options land here (click options take one value each).
@click.argument("more_options", nargs=-1, metavar="")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Where checkpoints and logs go [default: work_dirs/<config name>; for a work dir's own "
                   "config.yaml, that work dir].")
@click.option("--resume", default=None, metavar="auto|CKPT",
              help="Continue a run: 'auto' takes the latest epoch_N.pth in the work dir.")
@click.option("--force", is_flag=True,
              help="Start over in a work dir that holds another run (deletes its checkpoints and logs), or resume "
                   "with a config that trains differently than the checkpoint.")
@click.option("--load-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from these weights only (an hrnext-trt or the paper's mmpose checkpoint of the same arch; "
                   "of other joints, e.g. COCO for CrowdPose: all but the head).")
@click.option("--cfg-options", "cfg_options", multiple=True, metavar="KEY=VALUE",
              help="Override config keys, values read as YAML: --cfg-options optimizer.lr=1e-3 data.batch_size=16")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None, help="Override runtime.seed.")
@click.option("--deterministic", is_flag=True, help="Deterministic algorithms (slower; runs repeat exactly).")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="Override runtime.device.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Override schedule.epochs (the schedule is stretched or shrunk to fit).")
def command(config, more_options, work_dir, resume, force, load_from, cfg_options, seed, deterministic, device,
            max_epochs):
    """Train a model from a YAML config (see train/README.md); under torchrun every process runs this."""
    stray = [word for word in more_options if "=" not in word]
    if stray and "=" in config.name:  # click took an override for CONFIG: --cfg-options came first
        raise HrnextError(f"{config} is a KEY=VALUE override where the config file goes: put the config first, "
                          f"hrnext-trt train {stray[0]} [OPTIONS] --cfg-options KEY=VALUE ...")
    if stray:
        raise HrnextError(f"unexpected argument {stray[0]!r}: overrides are KEY=VALUE words after --cfg-options")
    options = [*cfg_options, *more_options]
    if seed is not None:
        options.append(f"runtime.seed={seed}")
    if deterministic:
        options.append("runtime.deterministic=true")
    if device is not None:
        options.append(f"runtime.device={device}")
    if max_epochs is not None:
        options.append(f"schedule.epochs={max_epochs}")
    cfg = load_config(config, options)
    if work_dir is None:
        # A work dir's own config.yaml (beside its run's log) names that run: --resume auto continues it
        # there. Any other config.yaml is a config like the rest: its folder is no work dir.
        own = config.name == CONFIG_NAME and (config.parent / LOG_NAME).is_file()
        work_dir = config.parent if own else Path("work_dirs") / config.stem
    path = train(cfg, work_dir, resume=resume, load_from=load_from, force=force)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank returns it; one line says it
        click.echo(f"checkpoint: {path}")
