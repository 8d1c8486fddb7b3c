#!/usr/bin/env bash
# Issue 13's GPU run plan in one command: every CUDA path of hrnext-trt, run for real, with its
# figures written under OUT (default gpu_report/). Run it on a GPU machine after
# scripts/gpu_offline_setup.sh install (or any CUDA environment with hrnext-trt installed):
#
#   scripts/gpu_verify.sh [OUT] [STEPS]      STEPS: comma list of train,resume,bench,trteval,rtx,amp
#                                            (default: all, in that order)
#
# Each step writes its own log and JSON; a failing step is recorded and the next one still runs,
# so one refusal (TensorRT for RTX on a data-centre GPU, say) does not hide the other figures.
set -uo pipefail

OUT=${1:-gpu_report}
STEPS=${2:-train,resume,bench,trteval,rtx,amp}
SHARED=${HRNEXT_SHARED:-../shared}
COCO=${COCO_ROOT:-$SHARED/data/coco-mini}
CROWDPOSE=${CROWDPOSE_ROOT:-$SHARED/data/crowdpose-mini}
ITERS=${ITERS:-300}  # training iterations of the timing runs
mkdir -p "$OUT"
status="$OUT/status.txt"
: > "$status"

step() {  # step NAME COMMAND...: run, keep the log, record ok/FAILED with the exit code
  local name=$1; shift
  echo "== $name: $*"
  if "$@" > "$OUT/$name.log" 2>&1; then echo "$name ok" >> "$status"; else echo "$name FAILED ($?)" >> "$status"; fi
  tail -n 25 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))' \
  > "$OUT/torch.txt" 2>&1

has() { [[ ",$STEPS," == *",$1,"* ]]; }

# hrnext_s 256x192 on the COCO sample, the paper's recipe (bf16 AMP, activation checkpointing),
# under torchrun with NCCL; iterations/s and peak memory at batch 32 and 64 come from log.jsonl.
train_run() {  # train_run WORK_DIR BATCH EPOCHS [extra options]
  local work=$1 batch=$2 epochs=$3; shift 3
  torchrun --standalone --nproc_per_node 1 -m hrnext_trt.cli train train/hrnext_s_coco_256x192.yaml \
    --work-dir "$work" --device cuda --max-epochs "$epochs" \
    --cfg-options data.train.root="$COCO" data.val.root="$COCO" data.val.split=val data.batch_size="$batch" \
    data.num_workers=8 runtime.eval_interval=1000 runtime.checkpoint_interval=1 "$@"
}
if has train; then
  for batch in 32 64; do
    epochs=$(( (ITERS * batch + 79) / 80 ))  # coco-mini has 80 training images
    step "train_b$batch" train_run "$OUT/train_b$batch" "$batch" "$epochs"
  done
  # The same run in fp16 (+GradScaler): bf16's per-step drift from float32 is ~10x fp16's on this
  # network in train mode (scripts/amp_drift.py); the AP of the two runs says whether it matters.
  step train_b32_fp16 train_run "$OUT/train_b32_fp16" 32 $(( (ITERS * 32 + 79) / 80 )) runtime.amp=fp16
fi

# Kill after epoch 2's checkpoint, resume, compare with an uninterrupted run of the same seed
# (deterministic algorithms: bf16 kernels may otherwise differ run to run).
if has resume; then
  resume_check() {
    local a="$OUT/resume_full" b="$OUT/resume_killed"
    rm -rf "$a" "$b"
    train_run "$a" 32 4 runtime.deterministic=true || return 1
    train_run "$b" 32 4 runtime.deterministic=true & local pid=$!
    while [ ! -f "$b/epoch_2.pth" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; done
    pkill -KILL -P "$pid"; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    train_run "$b" 32 4 runtime.deterministic=true --resume auto || return 1
    python3 - "$a/epoch_4.pth" "$b/epoch_4.pth" <<'EOF'
import sys, torch
a, b = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in sys.argv[1:])
diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
print(f"resumed vs uninterrupted, max abs weight difference: {diff:.3g}")
sys.exit(0 if diff <= 1e-6 else 1)
EOF
  }
  step resume resume_check
fi

# Latency of every PyTorch mode (both DKA forms, TF32 on/off, FP16/bf16 autocast, channels_last,
# torch.compile default and reduce-overhead) and every exported file, model-only and end to end.
if has bench; then
  step bench hrnext-trt bench hrnext_s --device cuda --batch 1,8,32,64 --iters 50 --warmup 10 \
    --torch-precisions fp32,fp32+tf32,fp16,bf16,fp16+channels_last,fp16+compile,fp16+compile-ro,fp32+static,fp16+static \
    --export-precisions fp32,fp16,int8 --json "$OUT/bench.json"
fi

# Accuracy on the GPU must equal the CPU's (FP32 within 0.001 AP): the same files on both devices.
# coco-mini val with the model trained above (a meaningful AP), and crowdpose-mini (the issue's
# set) with fresh hrnext_s weights of CrowdPose's 14 joints (no CrowdPose training images here).
if has trteval; then
  eval_both() {  # eval_both CKPT DATASET ROOT NAME
    local ckpt=$1 dataset=$2 root=$3 name=$4
    hrnext-trt export-engine "$ckpt" --fp16 --int8 --calib-data "$COCO" --out "$OUT/engines_$name" || return 1
    for device in cuda cpu; do
      hrnext-trt trt-eval --checkpoint "$ckpt" --engines "$OUT/engines_$name" --dataset "$dataset" \
        --data-root "$root" --device "$device" --out "$OUT/trt_eval_${name}_$device" || return 1
    done
    python3 scripts/compare_devices.py "$OUT/trt_eval_${name}_cuda/trt_eval.json" \
      "$OUT/trt_eval_${name}_cpu/trt_eval.json" --max-ap-diff 0.001
  }
  trteval_check() {
    local ckpt="$OUT/train_b32/best.pth"
    [ -f "$ckpt" ] || ckpt=$(ls -t "$OUT"/train_b32/epoch_*.pth | head -n 1)
    eval_both "$ckpt" coco "$COCO" coco || return 1
    python3 -c 'import sys, torch; from hrnext_trt.models import build_pose_model, make_checkpoint
torch.manual_seed(0); m = build_pose_model("hrnext_s", 14)
torch.save(make_checkpoint(m, (256, 192), "crowdpose"), sys.argv[1])' "$OUT/hrnext_s_crowdpose_fresh.pth"
    eval_both "$OUT/hrnext_s_crowdpose_fresh.pth" crowdpose "$CROWDPOSE" crowdpose
  }
  step trteval trteval_check
fi

# TensorRT for RTX: does its builder and runtime accept this GPU? The build log and trt-eval's
# TensorRT row keep the library's own words when it refuses.
if has rtx; then
  rtx_check() {
    local ckpt="$OUT/hrnext_s_crowdpose_fresh.pth"
    hrnext-trt export-engine "$ckpt" --builder tensorrt-rtx --fp16 --out "$OUT/engines_rtx" || return 1
    hrnext-trt trt-eval --engines "$OUT/engines_rtx" --dataset crowdpose --data-root "$CROWDPOSE" \
      --device cuda --backends tensorrt --out "$OUT/trt_eval_rtx"
  }
  step rtx rtx_check
fi

# One training step of the trained model under fp16 and bf16 autocast vs float32 on this GPU
# (heatmaps, peaks, gradients, and the floor the network's own sensitivity sets).
if has amp; then
  amp_check() {
    local ckpt="$OUT/train_b32/best.pth"
    [ -f "$ckpt" ] || ckpt=$(ls -t "$OUT"/train_b32/epoch_*.pth | head -n 1)
    python3 scripts/amp_drift.py train/hrnext_s_coco_256x192.yaml --checkpoint "$ckpt" --device cuda \
      --batch 32,64 --out "$OUT/amp_drift" --cfg-options data.train.root="$COCO" data.val.root="$COCO"
  }
  step amp amp_check
fi

echo; cat "$status"
