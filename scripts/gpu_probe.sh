#!/usr/bin/env bash
# What a GPU machine has, against what scripts/gpu_offline_setup.sh and gpu_verify.sh assume:
# the GPU and driver, CPUs and disk, the tools the plan calls, the python3 that holds PyTorch and
# its packages, nvcc and the driver's libcuda. Read it in the device calls that only carry wheels
# (they cost the same with a command), so a wrong assumption is fixed here before `install` runs
# there. Prints; never fails; MISSING marks what is absent.
#
#   scripts/gpu_probe.sh
set -u

section() { printf '\n== %s\n' "$1"; }

section gpu
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 | head -n 5
else
  echo "nvidia-smi MISSING (no NVIDIA driver tools on the PATH)"
fi

section machine
echo "nproc $(nproc); $(uname -srm)"
free -g 2>&1 | head -n 2
df -h . 2>&1 | tail -n 1
# DataLoader workers hand batches over in shared memory: a container's default 64 MiB /dev/shm
# fails batch 64 at 256x192 (38 MiB a batch); then TRAIN_OPTIONS="data.num_workers=0".
echo "/dev/shm: $(df -h /dev/shm 2>&1 | tail -n 1)"

section tools
for tool in python3 nvcc taskset setsid pgrep pkill tar gcc g++ make; do
  path=$(command -v "$tool") && echo "$tool $path" || echo "$tool MISSING"
done

section python3
python3 - <<'EOF'
import importlib.metadata as metadata
import os
import sys

print(sys.executable, sys.version.split()[0], "(a virtual environment)" if sys.prefix != sys.base_prefix else "")
print("CPUs this process may use:", ",".join(map(str, sorted(os.sched_getaffinity(0)))))
# What gpu_offline_setup.sh expects the machine to have (it brings the rest).
for name in ("torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless",
             "opencv-contrib-python-headless", "scipy", "matplotlib", "click", "tqdm", "pyyaml", "cython",
             "setuptools", "wheel", "packaging", "protobuf", "flatbuffers", "colorama", "pip",
             "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-curand", "nvidia-cudnn-cu13"):
    try:
        print(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name} MISSING")
try:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU seen"
    print(f"torch {torch.__version__}: CUDA {torch.version.cuda}, {gpu}")
except Exception as exc:  # the probe reports, it does not stop
    print(f"torch: cannot import ({type(exc).__name__}: {exc})")
try:  # the train step's DDP runs on NCCL; the recipe's AMP is bf16
    nccl = (".".join(map(str, torch.cuda.nccl.version())) if torch.distributed.is_available()
            and torch.distributed.is_nccl_available() else "MISSING")
    bf16 = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else "no GPU seen"
    print(f"NCCL {nccl}; bf16 {bf16}")
except Exception as exc:
    print(f"NCCL or bf16: cannot tell ({type(exc).__name__}: {exc})")
EOF

section nvcc
nvcc --version 2>&1 | tail -n 2
nvcc --dryrun -c -x cu /dev/null 2>&1 | grep '_HERE_' || echo "nvcc --dryrun: no _HERE_ (CUDA_ROOT must be set for pycuda)"

section libcuda
{ ldconfig -p 2>/dev/null | grep 'libcuda\.so'; ls /usr/local/nvidia/lib64/libcuda.so* 2>/dev/null; } \
  || echo "libcuda MISSING from ldconfig and /usr/local/nvidia/lib64 (set CUDA_DRIVER_LIB_DIR)"
exit 0
