#!/usr/bin/env bash
# Install hrnext-trt on an NVIDIA GPU machine that has no network, in two steps.
#
#   1. On a machine that reaches PyPI (any OS with Python 3 and pip):
#        scripts/gpu_offline_setup.sh fetch [DIR]        (DIR defaults to .whl)
#      downloads, for CPython 3.12 on x86-64 Linux, what the GPU machine lacks: the wheels below,
#      the source archives of xtcocotools and pycuda (they compile there), and a wheel of this
#      project. Files over 60 MiB are split into parts (a transfer limit of 64 MiB is common).
#   2. Copy DIR and the checkout to the GPU machine, then there:
#        scripts/gpu_offline_setup.sh install [DIR]      (from the checkout's root)
#      makes a virtual environment that sees the machine's own PyTorch and CUDA libraries
#      (--system-site-packages), builds xtcocotools against its numpy and pycuda against its CUDA
#      toolkit, installs hrnext-trt without touching the network, and prints what it can use.
#
# What such a machine is assumed to have (NVIDIA's CUDA images and this project's lent machines:
# Python 3.12, PyTorch with CUDA, nvcc, numpy, onnx, onnxruntime, opencv-python-headless, scipy,
# matplotlib, tensorboard, click, tqdm, pyyaml, cython, pytest): `install` stops with the list of
# whatever is still missing, which a second `fetch` can add (EXTRA="name==version ..." fetch).
#
# Deliberate choices:
# - ModelOpt is installed without its pins (--no-deps): its [onnx] extra pins onnx and pulls
#   onnxruntime-gpu (a ~250 MB wheel) over the machine's own onnx and onnxruntime. Its remaining
#   needs are listed below. ONNX Runtime's CUDA rows appear where the machine's onnxruntime has the
#   CUDA provider, and say why not otherwise.
# - TensorRT for RTX (tensorrt-rtx-cu13-*) is fetched too: its documentation lists RTX GPUs only,
#   so on a data-centre GPU expect `export-engine` to record the library's refusal.
set -euo pipefail

ACTION=${1:-}
DIR=${2:-.whl}
PART_BYTES=$((60 * 1024 * 1024))

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
PLATFORM=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

fetch() {
  mkdir -p "$DIR"
  # shellcheck disable=SC2086
  python3 -m pip download --no-deps --only-binary=:all: "${PLATFORM[@]}" -d "$DIR" "${WHEELS[@]}" ${EXTRA:-}
  python3 -m pip download --no-deps --no-binary=:all: --no-build-isolation -d "$DIR" "${SDISTS[@]}"
  python3 -m pip wheel --no-deps --no-build-isolation -w "$DIR" .
  for f in "$DIR"/*; do
    if [ "$(stat -c %s "$f")" -gt "$PART_BYTES" ]; then
      split -b "$PART_BYTES" -d "$f" "$f.part" && rm "$f"
      echo "split $(basename "$f") into $(ls "$f".part* | wc -l) parts: carry them in separate transfers"
    fi
  done
  du -sh "$DIR"
}

install() {
  [ -d "$DIR" ] || { echo "error: $DIR not found: run '$0 fetch $DIR' where PyPI is reachable, then copy it here" >&2; exit 2; }
  for first in "$DIR"/*.part00; do  # reassemble split files
    [ -e "$first" ] || continue
    cat "${first%.part00}".part* > "${first%.part00}" && rm "${first%.part00}".part*
  done
  python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || echo "warning: this python's torch sees no CUDA GPU; the GPU paths will say so" >&2
  python3 -m venv --system-site-packages .venv-gpu
  # shellcheck disable=SC1091
  . .venv-gpu/bin/activate
  pip_offline=(python3 -m pip install --no-index --find-links "$DIR" --no-build-isolation)
  "${pip_offline[@]}" --no-deps "$DIR"/nvidia_modelopt-*.whl
  "${pip_offline[@]}" "$DIR"/xtcocotools-*.tar.gz "$DIR"/cppimport-*.tar.gz
  CUDA_ROOT=${CUDA_ROOT:-$(dirname "$(dirname "$(command -v nvcc)")")} "${pip_offline[@]}" "$DIR"/pycuda-*.tar.gz \
    || echo "warning: pycuda did not build (needs nvcc and CUDA headers); TensorRT rows will say so" >&2
  "${pip_offline[@]}" "$DIR"/tensorrt_rtx_cu13_*.whl || echo "warning: TensorRT for RTX not installed" >&2
  # The project last: every requirement not met by the machine must now be in DIR.
  if ! "${pip_offline[@]}" --no-deps -e . || ! python3 -m pip check; then
    echo "error: requirements above are missing; fetch them with EXTRA=\"name==version\" $0 fetch" >&2
    exit 2
  fi
  python3 - <<'EOF'
import importlib.util
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
for name in ("onnxruntime", "modelopt", "xtcocotools", "pycuda", "tensorrt", "tensorrt_rtx_bindings"):
    print(f"{name:12s} {'yes' if importlib.util.find_spec(name) else 'no'}")
EOF
  echo "done: '. .venv-gpu/bin/activate' and run scripts/gpu_verify.sh"
}

case "$ACTION" in
  fetch) fetch ;;
  install) install ;;
  *) echo "usage: $0 fetch|install [DIR]" >&2; exit 2 ;;
esac
