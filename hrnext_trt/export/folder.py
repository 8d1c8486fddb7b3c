"""An export folder appears whole or not at all.

The export is written into a staging sibling (``.<name>.staging-<pid>``), verified against its
own manifest, and swapped with the target in one ``renameat2(RENAME_EXCHANGE)`` (two renames where
that call is missing). An interrupted export leaves the previous folder untouched and no file a
reader would take for an export; a re-export replaces every file, so no precision of the old
export survives beside the new manifest.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from hrnext_trt import interrupts
from hrnext_trt.engines.manifest_check import MANIFEST_NAME, load_manifest, verify_files
from hrnext_trt.errors import HrnextError

# What an export writes: a target folder holding anything else is not replaced.
_EXPORT_FILE = re.compile(r"^(manifest\.json|model(_\w+)?\.onnx|model_\w+\.engine|build_\w+\.log|timing\.cache"
                          r"|sensitivity(_fp16)?\.(json|png))$")
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(staging|old)-(?P<pid>\d+)$")


def check_target(out: Path) -> None:
    """Refuse, before any work, a target that is a file, holds other files or cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HrnextError(f"--out {out} is a file, not a folder: choose a folder for the export")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not _EXPORT_FILE.match(p.name))
        if foreign:
            raise HrnextError(f"--out {out} holds files an export does not make ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}): a re-export replaces the whole folder; "
                              "choose a new or empty folder")
    # Nothing is created here: a later refusal must leave no empty folder behind (the staging
    # folder makes the missing ones). The nearest folder that exists must let them be made.
    parent = out.resolve().parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise HrnextError(f"cannot create the folder of --out {out}: {existing} is a file; choose another place")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HrnextError(f"cannot write in {existing} (permission denied): choose a writable --out")


@contextlib.contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A fresh empty sibling of ``out``; removed when the block fails or is interrupted."""
    out = Path(out).resolve()
    remove_leftovers(out)
    stage = out.with_name(f".{out.name}.staging-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    made = [p for p in (stage.parent, *stage.parent.parents) if not p.exists()]  # deepest first
    try:
        stage.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as exc:
        raise HrnextError(f"cannot create {stage.parent} for --out {out}: {exc.strerror}: choose a writable place") \
            from None

    def remove() -> None:  # the staging folder, and the folders made for it: a refusal leaves nothing
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (something else is there now) or gone
                break

    with interrupts.on_interrupt(remove):
        try:
            yield stage
        except BaseException:
            remove()
            raise


def publish(stage: Path, out: Path) -> None:
    """Verify ``stage`` against its manifest and put it in place of ``out`` (whatever ``out`` held)."""
    verify_files(load_manifest(stage), stage)
    listed = set(load_manifest(stage)["artifacts"]) | {MANIFEST_NAME}
    extra = sorted(p.name for p in stage.iterdir() if p.name not in listed and p.name != "timing.cache")
    if extra:
        raise HrnextError(f"the export wrote files its manifest does not list ({', '.join(extra)}): a bug, "
                          "please report it")
    out = Path(out).resolve()
    if not out.exists():
        os.rename(stage, out)
        return
    if not _exchange(stage, out):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(stage, out)
        stage = old
    shutil.rmtree(stage, ignore_errors=True)  # now the previous export


def remove_leftovers(out: Path) -> None:
    """Staging and replaced folders of exports to ``out`` whose process is gone (killed exports)."""
    out = Path(out).resolve()
    if not out.parent.is_dir():
        return
    for path in out.parent.iterdir():
        found = _LEFTOVER.match(path.name)
        if found and found["name"] == out.name and path.is_dir() and not _alive(int(found["pid"])):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, from an earlier export in this process that failed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} into {b}: {os.strerror(err)}")
