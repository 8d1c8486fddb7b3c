"""The ``hrnext-trt`` command.

Each sub-command lives in its own module (``hrnext_trt/cli/<name>.py``, exposing ``command``)
and is imported only when invoked, so ``hrnext-trt --help`` is instant and a command's heavy
imports (torch, onnxruntime, tensorrt) never slow down another.

The library reports progress through ``logging`` (one logger per module, under ``hrnext_trt``);
this is the one place that decides where those lines go: stderr, so stdout keeps the tables and JSON.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click
from tqdm import tqdm

from hrnext_trt import __version__, interrupts
from hrnext_trt.errors import HrnextError, storage_error

# command name -> (module under hrnext_trt.cli, one-line help shown by --help)
COMMANDS = {
    "summary": ("summary", "Parameters, MACs and a per-stage table of a model."),
    "convert": ("convert", "Convert MPII or PoseTrack annotations to a COCO-format keypoint file."),
    "evaluate": ("evaluate", "Score a COCO-format keypoint results file on any dataset's benchmark protocol."),
    "visualize": ("visualize", "Draw predicted or ground-truth poses on images."),
    "predict": ("predict", "Poses on an image, folder, video or camera, through any backend."),
    "train": ("train", "Train a model from a YAML config (resumable, DDP-ready)."),
    "export-engine": ("export_engine", "Export ONNX (FP32/FP16/INT8) and build TensorRT engines."),
    "trt-eval": ("trt_eval", "Accuracy and latency of PyTorch vs every exported artifact."),
    "bench": ("bench", "Latency benchmark of every backend and batch size."),
    "demo": ("demo", "Train, export and compare on the bundled data in one command."),
}


class _ProgressHandler(logging.Handler):
    """Log lines to the current stderr through ``tqdm.write``, so they never tear a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise into the work it reports on
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"{record.levelname.lower()}: {message}" if record.levelno >= logging.WARNING else message


def configure_logging(level: int = logging.INFO) -> None:
    """Send the package's log records to stderr (once per process, however often the CLI runs)."""
    logger = logging.getLogger("hrnext_trt")
    logger.setLevel(level)
    if not any(isinstance(h, _ProgressHandler) for h in logger.handlers):
        handler = _ProgressHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"hrnext_trt.cli.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx, formatter):
        # Listing help must not import every command's dependencies.
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HrnextError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
            sys.exit(2)
        except (OSError, RuntimeError) as exc:
            full = storage_error(exc)  # a full disk or a read-only file system, however deep the write was
            if full is not None:  # said as such, also after a graceful Ctrl-C
                click.secho(f"error: {full}", err=True, fg="red")
                sys.exit(2)
            if interrupts.stopping():  # e.g. "DataLoader worker ... killed by signal": the same SIGTERM's doing
                click.secho(f"\nerror: {interrupts.message()}", err=True, fg="red")
                sys.exit(interrupts.exit_code())
            raise
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM taken as one
            # Every ``finally`` below has run: workers are stopped, staging folders removed.
            click.secho(f"\nerror: {interrupts.message()}", err=True, fg="red")
            sys.exit(interrupts.exit_code())


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hrnext-trt")
def main():
    """HRNeXt crowd pose estimation: train, export to ONNX/TensorRT, evaluate and benchmark."""
    interrupts.install_watchdog()
    configure_logging()


if __name__ == "__main__":
    main()
