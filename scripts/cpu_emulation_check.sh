#!/usr/bin/env bash
# Run the tests on an emulated CPU of another kind: by default an AVX2-only AMD EPYC (Zen 2: no
# AVX-512, no VNNI), the CPU of some CI machines, from any x86-64 machine. QEMU's user mode runs
# this venv's python on the emulated CPU, so NumPy, PyTorch, ONNX Runtime and OpenCV pick the
# kernels they pick there (check: the first line printed names PyTorch's CPU capability).
#
#   apt-get install qemu-user-static      # Debian/Ubuntu; QEMU 7.2 or newer emulates AVX2
#   scripts/cpu_emulation_check.sh tests/test_runners_int8.py tests/test_evaluation_benchmarks.py
#   CPU=Skylake-Client-v4 scripts/cpu_emulation_check.sh tests    # every test, one process
#
# The emulation costs about 5-20x: the whole suite takes one to two hours in one process (no
# xdist: its workers would start natively). Tests that start a subprocess (the CLI end-to-end
# ones) run that subprocess on the real CPU; everything in the test's own process is emulated.
set -euo pipefail
cd "$(dirname "$0")/.."
CPU="${CPU:-EPYC-Rome}"
PYTHON="${PYTHON:-$(command -v python || command -v python3 || true)}"
[ -n "$PYTHON" ] || { echo "error: no python on PATH: activate the environment with hrnext-trt's tests, or set PYTHON" >&2; exit 2; }
command -v qemu-x86_64-static >/dev/null || { echo "error: qemu-x86_64-static not found: apt-get install qemu-user-static" >&2; exit 2; }
# QEMU warns once per CPU feature it cannot emulate (xsaves, ...): noise for this purpose.
qemu-x86_64-static -cpu "$CPU" "$PYTHON" -c "import torch; print('emulated $CPU: PyTorch CPU capability', torch.backends.cpu.get_cpu_capability())" 2> >(grep -v "TCG doesn't support" >&2)
exec qemu-x86_64-static -cpu "$CPU" "$PYTHON" -m pytest -p no:xdist -p no:cacheprovider "${@:-tests}" 2> >(grep -v "TCG doesn't support" >&2)
