"""The folder of wheels and source archives that scripts/gpu_offline_setup.sh carries to a GPU
machine without network: packed into transfers of a size limit, gathered back there, a virtual
environment layered over the machine's own packages, and the check that nothing is missing.

    python3 scripts/offline_bundle.py pack DIR [--carry-mb 44]    (where it was fetched)
    python3 scripts/offline_bundle.py gather DIR                  (on the GPU machine)
    python3 scripts/offline_bundle.py venv PATH                   (with the machine's python3)
    python3 scripts/offline_bundle.py check DIR                   (inside that environment)

Standard library only (plus the ``packaging`` that pip carries): it runs with whatever python3
a machine has, before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

MIB = 1024 * 1024
PART = re.compile(r"^(?P<name>.+)\.part(?P<index>\d+)of(?P<count>\d+)$")
# The project wants the headless OpenCV with contrib (OpenCV 5 moved the HOG people detector
# there); any of these four provides the same cv2 module for everything else.
CV2_DISTRIBUTIONS = ("opencv-contrib-python-headless", "opencv-contrib-python", "opencv-python-headless",
                     "opencv-python")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _flatten(folder: Path) -> None:
    """Move the files of ``folder``'s subfolders (its carry folders) into it; drop the subfolders."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.parent != folder):
        shutil.move(str(path), folder / path.name)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        shutil.rmtree(sub)


def pack(folder: Path, carry_mib: float) -> None:
    """Split files over the limit, then fill numbered subfolders (carry1, carry2, ...) each within
    the limit, largest files first: one subfolder per transfer."""
    limit = int(carry_mib * MIB)
    _flatten(folder)  # a second pack starts from the flat folder
    for path in sorted(folder.iterdir()):
        size = path.stat().st_size
        if path.is_file() and size > limit:
            count = -(-size // limit)
            with path.open("rb") as whole:
                for index in range(count):
                    (folder / f"{path.name}.part{index + 1}of{count}").write_bytes(whole.read(limit))
            path.unlink()
    bins: list[list[Path]] = []
    sizes: list[int] = []
    for path in sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: -p.stat().st_size):
        size = path.stat().st_size
        slot = next((i for i, used in enumerate(sizes) if used + size <= limit), None)
        if slot is None:
            bins.append([])
            sizes.append(0)
            slot = len(bins) - 1
        bins[slot].append(path)
        sizes[slot] += size
    print(f"{'transfer':10s} {'MiB':>6s}  files (limit {carry_mib:g} MiB each)")
    for index, (paths, used) in enumerate(zip(bins, sizes), start=1):
        target = folder / f"carry{index}"
        target.mkdir()
        for path in paths:
            shutil.move(str(path), target / path.name)
        print(f"{target.name:10s} {used / MIB:6.1f}  {', '.join(p.name.split('-')[0] for p in paths)}")


def gather(folder: Path) -> None:
    """Bring every transfer's files back into one flat folder and join split files."""
    if not folder.is_dir():
        fail(f"{folder} not found: run 'scripts/gpu_offline_setup.sh fetch {folder}' (fetch-ort for onnxruntime-gpu) "
             "where PyPI is reachable, then bring it here")
    _flatten(folder)
    parts: dict[str, dict[int, Path]] = {}
    counts: dict[str, int] = {}
    for path in folder.iterdir():
        match = PART.match(path.name)
        if match:
            parts.setdefault(match["name"], {})[int(match["index"])] = path
            counts[match["name"]] = int(match["count"])
    for name, found in sorted(parts.items()):
        missing = sorted(set(range(1, counts[name] + 1)) - set(found))
        if missing:
            fail(f"{name}: part(s) {', '.join(map(str, missing))} of {counts[name]} are not in {folder}: "
                 "bring every carry folder that fetch made")
        with (folder / f"{name}.joining").open("wb") as whole:
            for index in sorted(found):
                whole.write(found[index].read_bytes())
        (folder / f"{name}.joining").rename(folder / name)
        for path in found.values():
            path.unlink()
        print(f"joined {name} from {len(found)} parts")


def make_venv(target: Path) -> None:
    """A virtual environment that sees this python's packages under its own.

    ``--system-site-packages`` exposes the base interpreter's site-packages only: where python3 is
    itself a virtual environment (the lent GPU machines' python3 is /opt/torch/.venv, which holds
    PyTorch), a .pth file adds that environment's site-packages after the new one's."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(target)], check=True)
    if sys.prefix == sys.base_prefix:
        return
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    inner = target / "lib" / version / "site-packages"
    (inner / "_machine_site_packages.pth").write_text("".join(f"{p}\n" for p in outer), encoding="utf-8")
    print(f"{target} also sees {', '.join(outer)}")
    # NVIDIA's library wheels (CUDA, cuDNN) are found by path, not import: onnxruntime-gpu installed
    # in the new environment looks for them in its own site-packages (preload_dlls: ../nvidia).
    nvidia = next((Path(p) / "nvidia" for p in outer if (Path(p) / "nvidia").is_dir()), None)
    if nvidia is not None and not (inner / "nvidia").exists():
        (inner / "nvidia").symlink_to(nvidia, target_is_directory=True)
        print(f"{inner / 'nvidia'} -> {nvidia}")


def _requirement_class():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip carries its own copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def _unmet(dist_name: str, requirement_class) -> list[str]:
    try:
        requires = metadata.requires(dist_name) or []
    except metadata.PackageNotFoundError:
        return [f"{dist_name} is not installed"]
    unmet = []
    for text in requires:
        req = requirement_class(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        names = CV2_DISTRIBUTIONS if req.name in CV2_DISTRIBUTIONS else (req.name,)
        versions = []
        for name in names:
            try:
                versions.append(metadata.version(name))
            except metadata.PackageNotFoundError:
                pass
        if not any(req.specifier.contains(v, prereleases=True) for v in versions):
            have = f" (installed: {', '.join(versions)})" if versions else " (not installed)"
            unmet.append(f"{dist_name} needs {req}{have}")
    return unmet


def check(folder: Path) -> None:
    """Every requirement of hrnext-trt and of each wheel installed from ``folder`` is met."""
    requirement_class = _requirement_class()
    names = ["hrnext-trt"]
    for path in folder.glob("*.whl"):
        names.append(path.name.split("-")[0].replace("_", "-"))
    unmet = [line for name in dict.fromkeys(names) for line in _unmet(name, requirement_class)]
    if unmet:
        print("\n".join(unmet), file=sys.stderr)
        fail('these requirements are not met: fetch them with EXTRA="name==version ..." '
             "scripts/gpu_offline_setup.sh fetch, bring the new carry folders, install again")
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        print(f"warning: this cv2 ({cv2.__version__}) has no HOGDescriptor: predict's default person detector "
              "needs opencv-contrib-python-headless (fetch it with EXTRA); everything else runs", file=sys.stderr)
    print(f"requirements met for {', '.join(dict.fromkeys(names))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("pack", "gather", "venv", "check"):
        cmd = sub.add_parser(name)
        cmd.add_argument("path", type=Path)
        if name == "pack":
            cmd.add_argument("--carry-mb", type=float, default=44.0)
    args = parser.parse_args()
    if args.action == "pack":
        pack(args.path, args.carry_mb)
    elif args.action == "gather":
        gather(args.path)
    elif args.action == "venv":
        make_venv(args.path)
    else:
        check(args.path)


if __name__ == "__main__":
    main()
