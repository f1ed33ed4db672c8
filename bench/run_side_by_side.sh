#!/usr/bin/env bash
# Runs basin's benchmarks and the PyTorch scripts in one invocation on the
# same GPU, then merges their JSON lines into one report with basin/PyTorch
# ratios (bench/pytorch/compare.py). The report starts with what makes the
# figures comparable: date, git commit, GPU, driver, CUDA, cuDNN and PyTorch
# versions.
#
#   bench/run_side_by_side.sh [BUILD_DIR] [OUT_DIR]
#   DEVICE=cpu bench/run_side_by_side.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR: a Release build (default: build), with the CUDA backend unless DEVICE=cpu
# OUT_DIR:   where logs, JSON lines and report.md go (default: out/side_by_side/<date>)
# Environment: PYTHON (default python3, or /usr/bin/python3 where python3
# cannot import torch; it needs torch, with CUDA unless DEVICE=cpu), MODELS
# (default resnet18,wrn16-8,wrn28-10), BATCH_SIZES (128,256), STEPS (50),
# REPEATS (200), TF32=1 to allow TF32 on both sides, DRY_RUN=1 to run the
# PyTorch scripts' CPU checks and basin's CPU self-check instead (for a machine
# without a GPU: it tests this script, it measures nothing).
#
# DEVICE=cpu: whole training steps on the CPU only, basin's CPU engine against
# PyTorch's (both on oneDNN): bench_train_step --device cpu and
# train_step.py --device cpu for every model, batch size, optimizer and
# thread count, basin then PyTorch for each configuration in turn, so both
# sides see the same machine state (a shared machine's load drifts over
# minutes). One table: basin and PyTorch images/s and basin/PyTorch time.
# Defaults there: MODELS resnet20,resnet18, BATCH_SIZES 128, OPTIMIZERS
# sgd,sam, THREADS 1,2, WARMUP 2, STEPS 10 (5 for resnet18, whose steps take
# seconds on a CPU; STEPS, when set, applies to every model), ROUNDS 3 (basin
# and PyTorch alternate that many times per configuration; the report takes
# each side's median round).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
out="${2:-$repo/out/side_by_side/$stamp}"
device="${DEVICE:-cuda}"
python="${PYTHON:-python3}"
if [[ -z "${PYTHON:-}" ]] && ! python3 -c "import torch" 2> /dev/null && [[ -x /usr/bin/python3 ]]; then
  python=/usr/bin/python3  # a venv's python3 first on PATH often has no torch; the system one may
fi
if [[ "$device" == "cpu" ]]; then
  models="${MODELS:-resnet20,resnet18}"
  batch_sizes="${BATCH_SIZES:-128}"
else
  models="${MODELS:-resnet18,wrn16-8,wrn28-10}"
  batch_sizes="${BATCH_SIZES:-128,256}"
fi
steps="${STEPS:-50}"
repeats="${REPEATS:-200}"
dry_run="${DRY_RUN:-0}"
tf32_flag=()
tf32_label="off"
if [[ "${TF32:-0}" == "1" ]]; then
  tf32_flag=(--tf32)
  tf32_label="on"
fi

die() {
  echo "run_side_by_side.sh: $*" >&2
  exit 1
}

[[ "$device" == "cuda" || "$device" == "cpu" ]] || die "DEVICE must be cuda or cpu, not '$device'"
bin="$build/bench"
[[ -x "$bin/bench_train_step" ]] || die "no $bin/bench_train_step: build first (cmake --build $build)"
command -v "$python" > /dev/null || die "no $python (set PYTHON)"
"$python" -c "import torch" 2> /dev/null || die "$python cannot import torch"

has_gpu=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q '^GPU'; then
  has_gpu=1
fi
if [[ "$device" == "cuda" && "$has_gpu" == "0" && "$dry_run" != "1" ]]; then
  echo "no CUDA device: nothing to measure"
  exit 0
fi
if [[ "$device" == "cuda" && "$dry_run" != "1" ]]; then
  [[ -x "$bin/bench_sam_kernels" && -x "$bin/bench_copy" ]] || die "$build was built without CUDA"
fi

mkdir -p "$out" || die "cannot create $out"
basin_json="$out/basin.jsonl"
torch_json="$out/pytorch.jsonl"
: > "$basin_json"
: > "$torch_json"

# ---- what the figures were measured on
commit="$(git -C "$repo" rev-parse HEAD 2> /dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain 2> /dev/null)" ]]; then
  commit="$commit (with uncommitted changes)"
fi
gpu="none"
driver="none"
if [[ "$device" == "cuda" && "$has_gpu" == "1" ]]; then
  gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
  driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)"
fi
nvcc_version="$(nvcc --version 2> /dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
[[ -n "$nvcc_version" ]] || nvcc_version="$(/usr/local/cuda/bin/nvcc --version 2> /dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
GPU="$gpu" DRIVER="$driver" NVCC="${nvcc_version:-unknown}" COMMIT="$commit" TF32_LABEL="$tf32_label" \
  DEVICE="$device" "$python" - > "$out/env.json" << 'EOF'
import datetime, json, os, re
import torch
env = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": os.environ["COMMIT"],
    "gpu": os.environ["GPU"],
    "driver": os.environ["DRIVER"],
    "cuda": os.environ["NVCC"],
    "torch": torch.__version__,
    "torch_cuda": torch.version.cuda or "none",
    "torch_cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none",
    "tf32": os.environ["TF32_LABEL"],
}
if os.environ["DEVICE"] == "cpu":
    # No GPU facts in a CPU report; the CPU and basin's engine come from the JSON lines.
    for key in ("gpu", "driver", "cuda", "torch_cuda", "torch_cudnn", "tf32"):
        del env[key]
    onednn = re.search(r"(?:MKL-DNN|oneDNN)\s+v?([0-9][0-9.]*)", torch.__config__.show())
    env["torch_onednn"] = onednn.group(1) if onednn else "none"
    # Other work on the machine slows multi-threaded steps most: say how busy it was.
    env["load"] = "%.2f %.2f %.2f" % os.getloadavg()
print(json.dumps(env))
EOF

failures=0
run() {
  local name="$1"
  shift
  echo "==> $name: $*"
  "$@" 2>&1 | tee "$out/$name.log"
  local status="${PIPESTATUS[0]}"
  if [[ "$status" != "0" ]]; then
    echo "run_side_by_side.sh: $name exited with status $status (see $out/$name.log)" >&2
    failures=$((failures + 1))
  fi
}

# As run(), for a program run once per configuration: appends to its log and
# shows only the command.
run_quiet() {
  local name="$1"
  shift
  echo "==> $name: $*" | tee -a "$out/$name.log"
  "$@" >> "$out/$name.log" 2>&1
  local status="$?"
  if [[ "$status" != "0" ]]; then
    echo "run_side_by_side.sh: $name exited with status $status (see $out/$name.log)" >&2
    failures=$((failures + 1))
  fi
}

# The figure of the last JSON line in a file: "123.4 images/s (median 1037.2 ms/step)".
last_figure() {
  tail -n 1 "$1" | "$python" -c 'import json, sys
r = json.loads(sys.stdin.read())
print("%.1f images/s (median %.1f ms/step)" % (r["images_per_s"], r["ms_per_step"]))' 2> /dev/null || echo "-"
}

if [[ "$dry_run" == "1" ]]; then
  run bench_sam_check "$bin/bench_sam_check" --models resnet20,cnn-small --dump-shapes "$out/shapes.json"
  # One thread on both sides, so compare.py pairs the two CPU figures.
  run bench_train_step "$bin/bench_train_step" --device cpu --models cnn-small --batch-sizes 2 --steps 1 \
    --warmup 1 --threads 1 --json "$basin_json"
  run sam_optimizer "$python" "$repo/bench/pytorch/sam_optimizer.py" --dry-run --shapes "$out/shapes.json" \
    --models resnet20,cnn-small --json "$torch_json"
  run train_step "$python" "$repo/bench/pytorch/train_step.py" --dry-run --threads 1 --json "$torch_json"
elif [[ "$device" == "cpu" ]]; then
  optimizers="${OPTIMIZERS:-sgd,sam}"
  threads="${THREADS:-1,2}"
  rounds="${ROUNDS:-3}"
  [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$rounds'"
  echo "CPU side by side: models $models, batch sizes $batch_sizes, optimizers $optimizers, threads $threads, $rounds rounds"
  echo "basin: $build; PyTorch: $python; logs in $out"
  IFS=, read -r -a model_list <<< "$models"
  IFS=, read -r -a batch_list <<< "$batch_sizes"
  IFS=, read -r -a optimizer_list <<< "$optimizers"
  IFS=, read -r -a thread_list <<< "$threads"
  for model in "${model_list[@]}"; do
    model_steps="${STEPS:-10}"
    if [[ "$model" == "resnet18" && -z "${STEPS:-}" ]]; then
      model_steps=5
    fi
    for batch in "${batch_list[@]}"; do
      for optimizer in "${optimizer_list[@]}"; do
        for n in "${thread_list[@]}"; do
          # basin, then PyTorch at once, ROUNDS times: each pair sees the
          # same machine state, and a drift over minutes hits both sides.
          common=(--models "$model" --batch-sizes "$batch" --optimizers "$optimizer" --threads "$n"
            --steps "$model_steps" --warmup "${WARMUP:-2}")
          for ((round = 1; round <= rounds; ++round)); do
            run_quiet bench_train_step "$bin/bench_train_step" --device cpu "${common[@]}" --json "$basin_json"
            echo "    round $round basin:   $(last_figure "$basin_json")"
            run_quiet train_step "$python" "$repo/bench/pytorch/train_step.py" --device cpu "${common[@]}" \
              --json "$torch_json"
            echo "    round $round PyTorch: $(last_figure "$torch_json")"
          done
        done
      done
    done
  done
else
  # basin first, then PyTorch, one after the other on the same GPU.
  run bench_copy "$bin/bench_copy" --repeats "$repeats" --json "$basin_json"
  run bench_sam_kernels "$bin/bench_sam_kernels" --models "$models" --repeats "$repeats" \
    --dump-shapes "$out/shapes.json" --json "$basin_json"
  run bench_train_step "$bin/bench_train_step" --models "$models" --batch-sizes "$batch_sizes" --steps "$steps" \
    "${tf32_flag[@]}" --json "$basin_json"
  run sam_optimizer "$python" "$repo/bench/pytorch/sam_optimizer.py" --shapes "$out/shapes.json" --models "$models" \
    --repeats "$repeats" --json "$torch_json"
  run train_step "$python" "$repo/bench/pytorch/train_step.py" --models "$models" --batch-sizes "$batch_sizes" \
    --steps "$steps" "${tf32_flag[@]}" --json "$torch_json"
fi

echo "==> report"
"$python" "$repo/bench/pytorch/compare.py" --env "$out/env.json" "$basin_json" "$torch_json" | tee "$out/report.md"
if [[ "${PIPESTATUS[0]}" != "0" ]]; then
  echo "run_side_by_side.sh: compare.py failed or found the two sides' figures not comparable (see the report)" >&2
  failures=$((failures + 1))
fi
echo
echo "logs, JSON lines and report.md are in $out"
if [[ "$failures" != "0" ]]; then
  echo "run_side_by_side.sh: $failures of the runs failed (see above)" >&2
  exit 1
fi
