#!/usr/bin/env bash
# Issue 13's GPU run plan in one command: every CUDA path of hrnext-trt, run for real, with its
# figures written under OUT (default gpu_report/). Run it on a GPU machine after
# scripts/gpu_offline_setup.sh install (or any CUDA environment with hrnext-trt installed):
#
#   scripts/gpu_verify.sh [OUT] [STEPS]      STEPS: comma list of train,train_more,resume,export,
#                                            trteval,bench,bench_compile,bench_engines,rtx,amp
#                                            (default: all, in that order; none: only the
#                                            environment's checks and the GPU's description)
#
# Each step writes its own log and JSON; a failing step is recorded and the next one still runs,
# so one refusal (TensorRT for RTX on a data-centre GPU, say) does not hide the other figures.
# `export` is CPU work (minutes of ModelOpt passes): a device session starts it in the background
# on cores of its own while the GPU steps run; `trteval` and `bench_engines` wait for it (at most
# EXPORT_WAIT seconds, 480):
#   PIN=upper setsid bash scripts/gpu_verify.sh gpu_report export > gpu_report/export.out 2>&1 &
#   PIN=lower bash scripts/gpu_verify.sh gpu_report train_more
# PIN=upper|lower runs the script on the upper or lower half of the CPUs it may use (taskset).
set -uo pipefail

if [ -n "${PIN:-}" ]; then
  [[ $PIN == upper || $PIN == lower ]] || { echo "error: PIN=$PIN: use PIN=upper or PIN=lower" >&2; exit 2; }
  # The CPUs this process may use (a container's may not start at 0), upper or lower half.
  range=$(python3 -c 'import os, sys; c = sorted(os.sched_getaffinity(0)); h = len(c) // 2
print(",".join(map(str, c[h:] if sys.argv[1] == "upper" else c[:max(h, 1)])))' "$PIN")
  echo "PIN=$PIN: CPUs $range"
  PIN="" exec taskset -c "$range" bash "$0" "$@"
fi

OUT=$(realpath -m "${1:-gpu_report}")
cd "$(dirname "$0")/.."  # the recipes, scripts and bundled samples are named from the checkout's root
ALL_STEPS=train,train_more,resume,export,trteval,bench,bench_compile,bench_engines,rtx,amp
STEPS=${2:-$ALL_STEPS}
for name in ${STEPS//,/ }; do  # a misspelt step would run nothing and exit 0 ("none": on purpose)
  [[ ",$ALL_STEPS,none," == *",$name,"* ]] \
    || { echo "error: unknown step $name: steps are $ALL_STEPS (or none)" >&2; exit 2; }
done
# The python that runs everything must hold hrnext-trt's environment (after gpu_offline_setup.sh
# install: `. .venv-gpu/bin/activate`). hrnext_trt alone imports from the checkout's root with any
# python: its dependencies tell the environment apart. Training starts through `python3 -m
# torch.distributed.run`, not the torchrun script: that script's own python may be another's.
python3 -c 'import click, pycocotools, onnx, hrnext_trt' 2> /dev/null \
  || { echo "error: python3 lacks hrnext-trt's environment (click, pycocotools, onnx): activate it" \
            "(. .venv-gpu/bin/activate)" >&2; exit 2; }
# The samples the package carries (the same files as ../shared/data's, which a device machine
# that receives only the checkout does not have).
COCO=${COCO_ROOT:-hrnext_trt/bundled_data/coco-mini}
CROWDPOSE=${CROWDPOSE_ROOT:-hrnext_trt/bundled_data/crowdpose-mini}
ITERS=${ITERS:-300}  # training iterations of the timing runs (RESUME_EPOCHS: the resume runs' length, 6)
# A rehearsal of the plan's logic on a machine without a GPU: DEVICE=cpu with TRAIN_OPTIONS that
# shrink the runs (e.g. "data.input_size=[64,48]"); the figures then mean nothing.
DEVICE=${DEVICE:-cuda}
TRAIN_OPTIONS=${TRAIN_OPTIONS:-}
mkdir -p "$OUT"
status="$OUT/status.txt"
: >> "$status"  # kept across calls: one plan may run its steps in several

step() {  # step NAME COMMAND...: run, keep the log, record ok/FAILED with the exit code and seconds
  local name=$1 start=$SECONDS code=0; shift
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1 || code=$?
  if [ "$code" = 0 ]; then echo "$name ok $((SECONDS - start)) s" >> "$status"
  else echo "$name FAILED ($code) $((SECONDS - start)) s" >> "$status"; fi
  tail -n 25 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))' \
  > "$OUT/torch.txt" 2>&1

has() { [[ ",$STEPS," == *",$1,"* ]]; }

# hrnext_s 256x192 on the COCO sample, the paper's recipe (bf16 AMP, activation checkpointing),
# under torch.distributed.run with NCCL. Steps per second and peak memory: each epoch's record in
# log.jsonl times the model step apart from the data wait (scripts/train_speed.py reads them).
# coco-mini's 86 people make epochs of one or two steps: its images are decoded once
# (data.cache_images), so each epoch's new workers do not spend device time decoding them again.
train_run() {  # train_run WORK_DIR BATCH EPOCHS [extra options]
  local work=$1 batch=$2 epochs=$3; shift 3
  python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m hrnext_trt train train/hrnext_s_coco_256x192.yaml \
    --work-dir "$work" --device "$DEVICE" --max-epochs "$epochs" \
    --cfg-options data.train.root="$COCO" data.val.root="$COCO" data.val.split=val data.batch_size="$batch" \
    data.num_workers=8 data.cache_images=true runtime.eval_interval=1000 runtime.checkpoint_interval=1000 \
    $TRAIN_OPTIONS "$@"
}
epochs_for() {  # epochs that make ITERS iterations: coco-mini's 86 training people, full batches only
  local per=$(( 86 / $1 )); echo $(( (ITERS + per - 1) / per ))
}
# `train` is the run every later step reads (batch 32); `train_more` the timing runs beside it, so
# that a device call of 10 minutes holds the install and the first.
if has train; then
  step train_b32 train_run "$OUT/train_b32" 32 "$(epochs_for 32)"
fi
if has train_more; then
  step train_b64 train_run "$OUT/train_b64" 64 "$(epochs_for 64)"
  # The same run in fp16 (+GradScaler): bf16's per-step drift from float32 is ~10x fp16's on this
  # network in train mode (scripts/amp_drift.py); the AP of the two runs says whether it matters.
  step train_b32_fp16 train_run "$OUT/train_b32_fp16" 32 "$(epochs_for 32)" runtime.amp=fp16
  step train_speed python3 scripts/train_speed.py "$OUT"/train_b32 "$OUT"/train_b64 "$OUT"/train_b32_fp16 \
    --json "$OUT/train_speed.json"
fi

# Kill after epoch 2's checkpoint, resume, compare with an uninterrupted run of the same seed
# (runtime.deterministic: cuDNN's and cuBLAS's deterministic kernels, and HRNeXt's bilinear
# upsampling differentiated by matrix products, models/layers.py). Batch 8 gives 10
# steps an epoch, so the kill lands inside the run; a run that ended first fails the step.
if has resume; then
  resume_check() {
    local a="$OUT/resume_full" b="$OUT/resume_killed" epochs=${RESUME_EPOCHS:-6}
    local opts=(runtime.deterministic=true runtime.checkpoint_interval=1)
    rm -rf "$a" "$b"
    train_run "$a" 8 "$epochs" "${opts[@]}" || return 1
    train_run "$b" 8 "$epochs" "${opts[@]}" & local pid=$!
    while [ ! -f "$b/epoch_2.pth" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    # The launcher starts its workers in sessions of their own (torch.distributed.elastic), so
    # killing it or its process group would leave them training: kill every process of this run.
    pkill -KILL -f -- "--work-dir $b"; wait "$pid" 2>/dev/null
    sleep 1; ! pgrep -f -- "--work-dir $b" > /dev/null || { echo "a process of the killed run survived"; return 1; }
    [ ! -f "$b/epoch_$epochs.pth" ] || { echo "the run ended before the kill: nothing was resumed"; return 1; }
    echo "killed after $(ls "$b"/epoch_*.pth | wc -l) epoch checkpoints"
    train_run "$b" 8 "$epochs" "${opts[@]}" --resume auto || return 1
    python3 - "$a/epoch_$epochs.pth" "$b/epoch_$epochs.pth" <<'EOF'
import sys, torch
a, b = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in sys.argv[1:])
diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
print(f"resumed vs uninterrupted, max abs weight difference: {diff:.3g}")
sys.exit(0 if diff <= 1e-6 else 1)
EOF
    local code=$?
    # An op without a deterministic CUDA kernel makes even two uninterrupted runs differ (PyTorch
    # only warns under runtime.deterministic's warn_only): name any the runs met.
    # (Captured first: grep refuses to read a file that is also its output, as this log is.)
    local ops; ops=$(grep -o "[A-Za-z0-9_]* does not have a deterministic implementation" "$OUT/resume.log" | sort -u)
    [ -z "$ops" ] || echo "ops without a deterministic CUDA kernel met by these runs: ${ops//$'\n'/; }"
    return $code
  }
  step resume resume_check
fi

trained() {  # the checkpoint the train step made (best, else the latest epoch)
  [ -f "$OUT/train_b32/best.pth" ] && { echo "$OUT/train_b32/best.pth"; return; }
  ls -t "$OUT"/train_b32/epoch_*.pth 2> /dev/null | head -n 1
}
crowdpose_fresh() {  # fresh hrnext_s weights with CrowdPose's 14 joints (no CrowdPose training images here)
  local path="$OUT/hrnext_s_crowdpose_fresh.pth"
  [ -f "$path" ] || python3 -c 'import sys, torch; from hrnext_trt.models import build_pose_model, make_checkpoint
torch.manual_seed(0); m = build_pose_model("hrnext_s", 14)
torch.save(make_checkpoint(m, (256, 192), "crowdpose"), sys.argv[1])' "$path"
  echo "$path"
}

# The trained model's export, every precision, once: the accuracy and latency steps below read it
# (AutoCast FP16 and the INT8 plan take minutes). ONNX files only: the builder there is TensorRT
# for RTX, whose targets lack the H100/H200's compute capability 9.0, so its engines could not run
# here and a refusal of its builder must not cost the ONNX files; the `rtx` step tries it apart.
if has export; then
  rm -rf "$OUT/engines_coco"
  step export hrnext-trt export-engine "$(trained)" --fp16 --int8 --calib-data "$COCO" --no-engines \
    --out "$OUT/engines_coco"
fi
exported() {  # wait while an export of engines_coco runs (in the background, say), then say if it is there
  local waited=0
  while pgrep -f -- "--out $OUT/engines_coco" > /dev/null; do
    (( waited < ${EXPORT_WAIT:-480} )) \
      || { echo "the export to $OUT/engines_coco still runs after $waited s: its log: $OUT/export.log"; return 1; }
    (( waited % 60 )) || echo "waiting for the export to $OUT/engines_coco (${waited} s)"
    sleep 5; waited=$((waited + 5))
  done
  [ -f "$OUT/engines_coco/manifest.json" ] \
    || { echo "no export in $OUT/engines_coco: run the export step first (its log: $OUT/export.log)"; return 1; }
}

# Accuracy on the GPU must equal the CPU's (FP32 within 0.001 AP): the same files on both devices.
# coco-mini val with the model trained above (a meaningful AP), and crowdpose-mini (the issue's
# set) with fresh hrnext_s weights of CrowdPose's 14 joints, exported in FP32.
if has trteval; then
  eval_both() {  # eval_both CKPT ENGINES DATASET ROOT NAME
    local ckpt=$1 engines=$2 dataset=$3 root=$4 name=$5
    for device in $(printf "%s\n" "$DEVICE" cpu | sort -u); do
      rm -rf "$OUT/trt_eval_${name}_$device"
      hrnext-trt trt-eval --checkpoint "$ckpt" --engines "$engines" --dataset "$dataset" \
        --data-root "$root" --device "$device" --out "$OUT/trt_eval_${name}_$device" || return 1
    done
    python3 scripts/compare_devices.py "$OUT/trt_eval_${name}_$DEVICE/trt_eval.json" \
      "$OUT/trt_eval_${name}_cpu/trt_eval.json" --max-ap-diff 0.001
  }
  trteval_check() {
    exported || return 1
    eval_both "$(trained)" "$OUT/engines_coco" coco "$COCO" coco || return 1
    local fresh; fresh=$(crowdpose_fresh)
    [ -d "$OUT/engines_crowdpose" ] || hrnext-trt export-engine "$fresh" --no-engines --out "$OUT/engines_crowdpose" \
      || return 1
    eval_both "$fresh" "$OUT/engines_crowdpose" crowdpose "$CROWDPOSE" crowdpose
  }
  step trteval trteval_check
fi

# Latency, model-only and end to end, at batch 1, 8, 32 and 64: every eager PyTorch mode (both DKA
# forms, TF32 on/off, FP16/bf16 autocast, channels_last); torch.compile (default and
# reduce-overhead, i.e. CUDA graphs) in steps of their own, its compilations take minutes and a
# device call has 10; the exported files (ONNX Runtime, engines) beside FP32 eager, once exported.
# Each table's speed-up is over its own FP32 eager row (fp32 leads every list), in the same run.
BENCH=(hrnext-trt bench --device "$DEVICE" --batch "${BENCH_BATCHES:-1,8,32,64}" --iters 50 --warmup 10)
if has bench; then
  step bench "${BENCH[@]}" "$(trained)" --backends pytorch --json "$OUT/bench.json" \
    --torch-precisions "${BENCH_MODES:-fp32,fp32+tf32,fp16,bf16,fp16+channels_last,fp32+static,fp16+static}"
fi
if has bench_compile; then
  # One run per compiled mode and batch size, each beside fp32 and fp16 eager of that batch: every
  # batch size is a compilation of its own in the grouped DKA form (Inductor's convolution guards
  # `groups`, batch x channels there), so a call cut short at its 10 minutes keeps what was timed.
  # The issue's goal batches first (1 and 32); the inductor cache on disk serves shared graphs.
  for batch in ${BENCH_COMPILE_BATCHES:-1 32 8 64}; do
    for mode in ${BENCH_COMPILE_MODES:-fp16+compile fp16+compile-ro fp16+static+compile-ro}; do
      step "bench_compile_${mode//+/-}_b$batch" "${BENCH[@]}" --batch "$batch" "$(trained)" --backends pytorch \
        --json "$OUT/bench_compile_${mode//+/-}_b$batch.json" --torch-precisions "fp32,fp16,$mode"
    done
  done
fi
if has bench_engines; then
  bench_engines() {
    exported || return 1
    "${BENCH[@]}" "$(trained)" --engines "$OUT/engines_coco" --torch-precisions fp32 --json "$OUT/bench_engines.json"
  }
  step bench_engines bench_engines
fi

# TensorRT for RTX: does its builder and runtime accept this GPU? The build log and trt-eval's
# TensorRT row keep the library's own words when it refuses.
if has rtx; then
  rtx_check() {
    rm -rf "$OUT/engines_rtx" "$OUT/trt_eval_rtx"
    hrnext-trt export-engine "$(crowdpose_fresh)" --builder tensorrt-rtx --out "$OUT/engines_rtx" || return 1
    # The library's own words: deserialise on this GPU directly (trt-eval would first refuse an
    # engine whose manifest lacks this GPU's compute capability, in hrnext-trt's words).
    python3 - "$OUT/engines_rtx/model_fp32.engine" <<'EOF'
import sys
import torch
from hrnext_trt.engines.builders import TENSORRT_RTX, import_builder
trt = import_builder(TENSORRT_RTX)
print(f"TensorRT for RTX {trt.__version__} on {torch.cuda.get_device_name(0)}, compute capability "
      f"{'.'.join(map(str, torch.cuda.get_device_capability(0)))}")
class Log(trt.ILogger):
    def __init__(self):
        trt.ILogger.__init__(self)
    def log(self, severity, msg):
        print(f"[{severity}] {msg}")
logger = Log()
engine = trt.Runtime(logger).deserialize_cuda_engine(open(sys.argv[1], "rb").read())
print("deserialised" if engine is not None else "refused: deserialize_cuda_engine returned None")
EOF
    # An engine this GPU cannot run is a row saying why; with none that runs, trt-eval fails with the reasons.
    hrnext-trt trt-eval --engines "$OUT/engines_rtx" --dataset crowdpose --data-root "$CROWDPOSE" \
      --device cuda --backends tensorrt --out "$OUT/trt_eval_rtx" || return 1
    # It runs here: its engines join the latency table beside FP32 eager PyTorch.
    "${BENCH[@]}" "$(crowdpose_fresh)" --engines "$OUT/engines_rtx" --backends pytorch,tensorrt \
      --torch-precisions fp32 --json "$OUT/bench_rtx.json"
  }
  step rtx rtx_check
fi

# One training step of the trained model under fp16 and bf16 autocast vs float32 on this GPU
# (heatmaps, peaks, gradients, and the floor the network's own sensitivity sets).
if has amp; then
  amp_check() {
    rm -rf "$OUT/amp_drift"
    python3 scripts/amp_drift.py train/hrnext_s_coco_256x192.yaml --checkpoint "$(trained)" --device "$DEVICE" \
      --batch 32,64 --out "$OUT/amp_drift" --cfg-options data.train.root="$COCO" data.val.root="$COCO"
  }
  step amp amp_check
fi

echo; cat "$status"
