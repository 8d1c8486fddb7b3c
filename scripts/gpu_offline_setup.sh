#!/usr/bin/env bash
# Install hrnext-trt on an NVIDIA GPU machine that has no network, in two steps.
#
#   1. On a machine that reaches PyPI (any OS with Python 3 and pip):
#        scripts/gpu_offline_setup.sh fetch [DIR]        (DIR defaults to .whl)
#      downloads, for CPython 3.12 on x86-64 Linux, what the GPU machine lacks: the wheels below
#      and the source archives of xtcocotools, cppimport and pycuda (they compile there), then
#      packs them into DIR/carry1, DIR/carry2, ... of at most CARRY_MB MiB each (default 44: a
#      64 MiB transfer limit less this checkout's ~15 MiB and ~5 to spare), splitting the larger files.
#   2. Bring the checkout and every carry folder to the GPU machine (in as many transfers as there
#      are carry folders), then there, from the checkout's root:
#        scripts/gpu_offline_setup.sh install [DIR]
#      joins the parts, makes .venv-gpu over the machine's own PyTorch and CUDA libraries, builds
#      xtcocotools against its numpy and pycuda against its CUDA toolkit and driver, installs
#      hrnext-trt (editable) without touching the network, checks every requirement, and prints
#      what it can use. Then `. .venv-gpu/bin/activate` and scripts/gpu_verify.sh.
#   Optional, for ONNX Runtime's CUDA rows (the machine's own onnxruntime may be a CPU build):
#        scripts/gpu_offline_setup.sh fetch-ort [DIR]    (DIR defaults to .whl-ort; ~244 MiB, 6 carries)
#      here, and `install DIR` there: it adds onnxruntime-gpu, built for CUDA 13, to .venv-gpu.
#
# What such a machine is assumed to have (NVIDIA's CUDA images and this project's lent machines:
# Python 3.12, PyTorch with CUDA, nvcc, numpy, onnx, onnxruntime, opencv-python-headless, scipy,
# matplotlib, tensorboard, click, tqdm, pyyaml, cython, setuptools, packaging, pytest): `install`
# stops with the list of whatever is still missing, which a second `fetch` can add
# (EXTRA="name==version ..." scripts/gpu_offline_setup.sh fetch).
#
# Deliberate choices:
# - Everything installs with --no-deps and `install` checks the requirements itself: ModelOpt's
#   [onnx] extra pins onnx and pulls onnxruntime-gpu (~250 MB) over the machine's own, and the
#   machine's opencv-python-headless stands in for opencv-contrib-python-headless (the same cv2;
#   OpenCV 5 keeps only predict's HOG person detector in contrib: a warning says so).
#   ONNX Runtime's CUDA rows appear where the machine's onnxruntime has the CUDA provider, or with
#   fetch-ort's onnxruntime-gpu (apart: its 244 MiB take six transfers, which ride along with the
#   calls that run GPU steps anyway). It loads the CUDA libraries of the machine's PyTorch (CUDA 13).
# - The machine's python3 may itself be a virtual environment (the lent machines': /opt/torch/.venv):
#   .venv-gpu then sees its packages through a .pth file, which --system-site-packages alone
#   would not give (scripts/offline_bundle.py venv).
# - pycuda is configured explicitly: CUDA_ROOT from nvcc itself (a wrapper script in /usr/local/bin
#   would mislead its default), libcuda from the driver (CUDA_DRIVER_LIB_DIR, else ldconfig and
#   the usual driver folders), no cuRAND (unused here).
# - TensorRT for RTX (tensorrt-rtx-cu13-*) is fetched too: its documentation lists RTX GPUs only,
#   so on a data-centre GPU expect `export-engine` to record the library's refusal.
set -euo pipefail

ACTION=${1:-}
DIR=${2:-.whl}
HERE=$(cd "$(dirname "$0")" && pwd)
CARRY_DEFAULT=44  # MiB per transfer: 64 less the checkout's ~15 and ~5 to spare (fetch-ort's 46: see its case)

# Wheels (name==version) that an NVIDIA CUDA/PyTorch image does not carry.
WHEELS=(
  pycocotools==2.0.11 onnxslim==0.1.98 nvidia-modelopt==0.47.0
  onnx-graphsurgeon==0.6.1 onnxconverter-common==1.16.0 polygraphy==0.53.6 "pulp==3.3.2"
  omegaconf==2.4.0 antlr4-python3-runtime==4.13.2 lief==1.0.0 mako==1.4.3
  pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
  tensorrt-rtx-cu13-bindings==1.7.1.116 tensorrt-rtx-cu13-libs==1.7.1.116
)
# Source archives: compiled on the GPU machine (against its numpy / its CUDA toolkit).
SDISTS=(xtcocotools==1.14.3 pycuda==2026.1 cppimport==26.4.17)
# onnxruntime-gpu from 1.31 is built for CUDA 13 (1.24, which ModelOpt pins, for CUDA 12).
ORT_WHEELS=(onnxruntime-gpu==1.31.1)
PLATFORM=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

fetch() {
  mkdir -p "$DIR"
  python3 "$HERE/offline_bundle.py" gather "$DIR" > /dev/null  # a second fetch adds to the first
  # shellcheck disable=SC2086
  python3 -m pip download --no-deps --only-binary=:all: "${PLATFORM[@]}" -d "$DIR" "${WHEELS[@]}" ${EXTRA:-}
  # Source archives straight from PyPI's JSON API, checked against its sha256: `pip download`
  # would build each one's metadata here, and xtcocotools' setup.py imports numpy undeclared.
  python3 - "$DIR" "${SDISTS[@]}" <<'EOF'
import hashlib, json, sys, urllib.request
from pathlib import Path
folder = Path(sys.argv[1])
for spec in sys.argv[2:]:
    name, version = spec.split("==")
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60) as reply:
        sdist = next(u for u in json.load(reply)["releases"][version] if u["packagetype"] == "sdist")
    with urllib.request.urlopen(sdist["url"], timeout=300) as reply:
        data = reply.read()
    if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
        sys.exit(f"error: {sdist['filename']}: sha256 differs from PyPI's; fetch again")
    (folder / sdist["filename"]).write_bytes(data)
    print(f"Saved {folder / sdist['filename']}")
EOF
  python3 "$HERE/offline_bundle.py" pack "$DIR" --carry-mb "${CARRY_MB:-$CARRY_DEFAULT}"
}

# pycuda, configured for this machine: CUDA_ROOT as nvcc reports it, the driver's libcuda linked
# through a private folder (pycuda links -lcuda; drivers often ship only libcuda.so.1).
build_pycuda() {
  local root=${CUDA_ROOT:-} lib="" dir src
  if [ -z "$root" ] && command -v nvcc > /dev/null; then
    root=$(nvcc --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n 1)
    root=${root%/bin}
  fi
  [ -n "$root" ] && [ -f "$root/include/cuda.h" ] || { echo "no CUDA toolkit (nvcc, include/cuda.h); set CUDA_ROOT"; return 1; }
  for dir in ${CUDA_DRIVER_LIB_DIR:-} /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu \
             /usr/lib64 "$root/lib64/stubs" "$root/lib/stubs" $(ldconfig -p 2>/dev/null | sed -n 's/.*libcuda\.so.* => //p' | xargs -r -n1 dirname); do
    for name in libcuda.so libcuda.so.1; do
      [ -e "$dir/$name" ] && { lib="$dir/$name"; break 2; }
    done
  done
  [ -n "$lib" ] || { echo "no libcuda (the NVIDIA driver's library) found; set CUDA_DRIVER_LIB_DIR"; return 1; }
  src=$(mktemp -d)
  tar -xzf "$DIR"/pycuda-*.tar.gz -C "$src"
  src=$(echo "$src"/pycuda-*)
  mkdir -p "$src/driver-lib" && ln -sf "$lib" "$src/driver-lib/libcuda.so"
  echo "pycuda: CUDA_ROOT=$root, libcuda=$lib"
  (cd "$src" && python3 configure.py --cuda-root="$root" --cudadrv-lib-dir="$src/driver-lib" \
     --no-cuda-enable-curand > /dev/null && "${pip_offline[@]}" .)
}

install() {
  python3 "$HERE/offline_bundle.py" gather "$DIR"
  python3 -c 'import torch' 2> /dev/null \
    || { echo "error: this python3 has no torch: run install with the python that holds the machine's PyTorch" >&2; exit 2; }
  python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || echo "warning: this python's torch sees no CUDA GPU; the GPU paths will say so" >&2
  [ -d .venv-gpu ] || python3 "$HERE/offline_bundle.py" venv .venv-gpu
  # shellcheck disable=SC1091
  . .venv-gpu/bin/activate
  pip_offline=(python3 -m pip install -q --no-index --find-links "$DIR" --no-build-isolation --no-deps)
  "${pip_offline[@]}" "$DIR"/*.whl
  # A second folder (fetch-ort's) may hold wheels only: what it lacks was installed from the first.
  if compgen -G "$DIR/xtcocotools-*.tar.gz" > /dev/null; then
    "${pip_offline[@]}" "$DIR"/xtcocotools-*.tar.gz "$DIR"/cppimport-*.tar.gz
  fi
  if compgen -G "$DIR/pycuda-*.tar.gz" > /dev/null; then
    build_pycuda || echo "warning: pycuda not built (above); engines cannot run here and their rows will say so" >&2
  fi
  "${pip_offline[@]}" -e .
  python3 "$HERE/offline_bundle.py" check "$DIR"
  python3 - <<'EOF'
import importlib.util
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
for name in ("onnxruntime", "modelopt", "xtcocotools", "pycuda", "tensorrt", "tensorrt_rtx_bindings"):
    print(f"{name:22s} {'yes' if importlib.util.find_spec(name) else 'no'}")
from hrnext_trt.contract import unavailable_reason
for backend in ("pytorch", "onnxruntime", "tensorrt"):
    print(f"{backend} on cuda: {unavailable_reason(backend, 'cuda') or 'ready'}")
EOF
  echo "done: '. .venv-gpu/bin/activate' and run scripts/gpu_verify.sh"
}

case "$ACTION" in
  fetch) fetch ;;
  # 46: five full parts ride alone (calls 4-8) and the last, ~14 MiB, beside .whl/carry3 (call 3).
  fetch-ort) DIR=${2:-.whl-ort}; WHEELS=("${ORT_WHEELS[@]}"); SDISTS=(); CARRY_DEFAULT=46; fetch ;;
  install) install ;;
  *) echo "usage: $0 fetch|fetch-ort|install [DIR]" >&2; exit 2 ;;
esac
