#!/usr/bin/env bash
# Builds basin with its CUDA backend on a machine with a GPU, runs the whole
# test suite and every benchmark, and writes the logs to OUT_DIR:
#
#   env.txt          GPU, driver, nvidia-smi, nvcc, CMake, compiler, cuDNN found
#   configure.log    cmake configure of build-gpu/
#   build.log        the build
#   ctest.log        the test suite (--output-on-failure)
#   side_by_side/    with PyTorch importable: bench/run_side_by_side.sh's logs,
#                    JSON lines and report.md (basin/PyTorch ratios)
#   bench-<name>.log without PyTorch: one per executable in build-gpu/bench/
#   train.log        with BASIN_CIFAR10_DIR set: a short ResNet-18 SAM run
#   summary.txt      one line per step: status, seconds, log
#
#   bash scripts/gpu-check.sh OUT_DIR
#
# The machine needs nvcc, CMake, ninja and a C++ compiler, but no Debian
# packages: the header-only dependencies come from .deps/, written beforehand
# by scripts/pack-deps.sh on a machine that has them. A failing step does not
# stop the ones after it, so every log is written; the exit status is non-zero
# when any step failed. Since a GPU is present, a [cuda] test reported as
# skipped counts as a failure. The whole run stays within GPU_CHECK_BUDGET
# seconds (default 540).
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: bash scripts/gpu-check.sh OUT_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
mkdir -p "$1"
out=$(cd "$1" && pwd)
build="build-gpu"
jobs=$(nproc)
budget=${GPU_CHECK_BUDGET:-540}
start=$SECONDS

steps=()    # "name|status|seconds|log" per step
failed=0

note() { printf '==> [%4ds] %s\n' "$((SECONDS - start))" "$*"; }
remaining() { echo $((budget - (SECONDS - start))); }

# run_step NAME LOG TIMEOUT COMMAND...: runs the command with its output going
# to LOG, under a time limit; records the outcome and, on failure, shows the
# end of the log.
run_step() {
  local name=$1 log=$2 limit=$3
  shift 3
  local t0=$SECONDS rc
  if ((limit < 10)); then
    note "$name: SKIPPED, the time budget of ${budget}s is spent"
    echo "not run: the time budget of ${budget}s is spent" >"$log"
    steps+=("$name|not run|0|$log")
    failed=1
    return 1
  fi
  note "$name (limit ${limit}s, log $log)"
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  local dt=$((SECONDS - t0)) status=ok
  if ((rc == 124 || rc == 137)); then
    status="TIMED OUT after ${limit}s"
  elif ((rc != 0)); then
    status="FAILED (exit $rc)"
  fi
  if [[ $status != ok ]]; then
    failed=1
    note "$name: $status; last lines of $log:"
    tail -n 25 "$log" | sed 's/^/    /'
  fi
  steps+=("$name|$status|$dt|$log")
  [[ $status == ok ]]
}

# ------------------------------------------------------------------ environment
note "recording the environment in $out/env.txt"
nvcc_bin=$(command -v nvcc || true)
if [[ -z $nvcc_bin && -x /usr/local/cuda/bin/nvcc ]]; then
  nvcc_bin=/usr/local/cuda/bin/nvcc
fi
cuda_root=""
if [[ -n $nvcc_bin ]]; then
  cuda_root=$(cd "$(dirname "$(readlink -f "$nvcc_bin")")/.." && pwd)
fi

# cuDNN: $CUDNN_ROOT, else the CUDA toolkit's, else the system's (CMake finds
# it by itself), else PyTorch's pip package. nvidia.cudnn is a namespace
# package, with no __file__: its folder is __path__[0].
cudnn_root=""
cudnn_from=""
if [[ -n ${CUDNN_ROOT:-} ]]; then
  cudnn_root=$CUDNN_ROOT
  cudnn_from="CUDNN_ROOT"
elif [[ -n $cuda_root && -f $cuda_root/include/cudnn.h ]] && compgen -G "$cuda_root/lib*/libcudnn.so*" >/dev/null; then
  cudnn_root=$cuda_root
  cudnn_from="the CUDA toolkit"
elif compgen -G "/usr/include/cudnn*.h" >/dev/null || compgen -G "/usr/include/*-linux-gnu/cudnn*.h" >/dev/null; then
  cudnn_from="the system"
else
  pip_cudnn=$(python3 -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  if [[ -n $pip_cudnn && -d $pip_cudnn ]]; then
    cudnn_root=$pip_cudnn
    cudnn_from="PyTorch's pip package"
  fi
fi

# NCCL (data parallelism; one rank runs the real NCCL path in the [cuda] tests):
# $NCCL_ROOT, else the CUDA toolkit's (CMake finds it), else PyTorch's pip package.
nccl_root=${NCCL_ROOT:-}
if [[ -z $nccl_root && ! ( -n $cuda_root && -f $cuda_root/include/nccl.h ) ]]; then
  pip_nccl=$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  [[ -n $pip_nccl && -f $pip_nccl/include/nccl.h ]] && nccl_root=$pip_nccl
fi

{
  echo "date:      $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host:      $(uname -srm)"
  echo "commit:    $(git rev-parse HEAD 2>/dev/null || echo 'unknown (not a git checkout)')"
  echo "cpus:      $jobs"
  echo
  echo "## GPU"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi --query-gpu failed"
  echo
  echo "## nvidia-smi"
  nvidia-smi 2>&1 || echo "nvidia-smi failed"
  echo
  echo "## nvcc ($nvcc_bin)"
  if [[ -n $nvcc_bin ]]; then "$nvcc_bin" --version 2>&1; else echo "nvcc not found"; fi
  echo
  echo "## tools"
  cmake --version 2>&1 | head -n 1
  echo "ninja $(ninja --version 2>&1)"
  c++ --version 2>&1 | head -n 1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 || true
  echo
  echo "## cuDNN"
  if [[ -n $cudnn_root ]]; then
    echo "root: $cudnn_root (from $cudnn_from)"
    grep -hE '^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$cudnn_root/include/cudnn_version.h" 2>/dev/null || true
  elif [[ -n $cudnn_from ]]; then
    echo "from $cudnn_from: CMake's search decides (configure.log says which)"
  else
    echo "not found (CUDNN_ROOT unset, none in the CUDA toolkit, no nvidia.cudnn Python package)"
  fi
  echo
  echo "## NCCL"
  echo "root: ${nccl_root:-the CUDA toolkit's, or none (configure.log says)}"
} >"$out/env.txt" 2>&1
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
if [[ -n $gpu ]]; then
  note "GPU: $gpu"
  steps+=("GPU visible|ok|0|env.txt")
else
  note "ERROR: nvidia-smi sees no GPU (see $out/env.txt); carrying on so the logs are written"
  steps+=("GPU visible|FAILED (nvidia-smi)|0|env.txt")
  failed=1
fi
note "nvcc: ${nvcc_bin:-not found}"
if [[ -n $cudnn_root ]]; then
  note "cuDNN: $cudnn_root (from $cudnn_from)"
elif [[ -n $cudnn_from ]]; then
  note "cuDNN: from $cudnn_from (found by CMake)"
else
  note "cuDNN: not found; basin builds without it"
fi

# ------------------------------------------------------------------ configure + build
cmake_args=(-S . -B "$build" -G Ninja -DBASIN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release)
if [[ -d .deps ]]; then
  cmake_args+=("-DCMAKE_PREFIX_PATH=$root/.deps")
else
  note "warning: no .deps/ here (run scripts/pack-deps.sh where the Debian packages are); relying on system packages"
fi
[[ -n $nvcc_bin ]] && cmake_args+=("-DCMAKE_CUDA_COMPILER=$nvcc_bin")
[[ -n $cudnn_root ]] && cmake_args+=("-DCUDNN_ROOT=$cudnn_root")
[[ -n $nccl_root ]] && cmake_args+=("-DNCCL_ROOT=$nccl_root")

built=0
if run_step configure "$out/configure.log" "$(($(remaining) < 120 ? $(remaining) : 120))" cmake "${cmake_args[@]}"; then
  grep -h '^-- basin:' "$out/configure.log" | sed 's/^--/   /'
  if run_step build "$out/build.log" "$(($(remaining) - 60))" cmake --build "$build" --parallel "$jobs"; then
    built=1
  fi
else
  steps+=("build|not run|0|-")
fi

# ------------------------------------------------------------------ tests
if ((built)); then
  run_step ctest "$out/ctest.log" "$(($(remaining) - 30))" \
    ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$((jobs < 8 ? jobs : 8))" --timeout 300

  # The tests that did not run, as ctest names them: "  12 - some test (Skipped)".
  skipped=$(sed -nE 's/^[[:space:]]*[0-9]+ - (.*) \(Skipped\)$/\1/p' "$out/ctest.log")
  cuda_tests=""
  if [[ -x $build/tests/basin_tests ]]; then
    cuda_tests=$("$build/tests/basin_tests" '[cuda]' --list-test-names-only 2>/dev/null | sed '/^[[:space:]]*$/d' || true)
  fi
  cuda_count=$(printf '%s' "$cuda_tests" | grep -c . || true)
  if [[ -n $skipped ]]; then
    if [[ -n $cuda_tests ]]; then
      skipped_cuda=$(grep -Fxf <(printf '%s\n' "$cuda_tests") <<<"$skipped" || true)
    else
      skipped_cuda=$skipped  # no tag list to go by: every skip is suspect on a GPU machine
    fi
    if [[ -n $skipped_cuda ]]; then
      failed=1
      note "ERROR: a GPU is present, yet these [cuda] tests were SKIPPED:"
      while IFS= read -r t; do echo "    $t"; done <<<"$skipped_cuda"
      steps+=("cuda tests ran|FAILED ($(grep -c . <<<"$skipped_cuda") skipped)|0|$out/ctest.log")
    else
      steps+=("cuda tests ran|ok ($cuda_count [cuda] tests)|0|$out/ctest.log")
    fi
  else
    steps+=("cuda tests ran|ok ($cuda_count [cuda] tests, none skipped)|0|$out/ctest.log")
  fi
else
  steps+=("ctest|not run (no build)|0|-")
fi

# ------------------------------------------------------------------ benchmarks
# With a python3 that imports torch, bench/run_side_by_side.sh runs basin's GPU
# benchmarks and the PyTorch scripts one after the other and writes the report
# for bench/RESULTS.md to OUT_DIR/side_by_side/report.md (its MODELS,
# BATCH_SIZES, STEPS and REPEATS variables pass through). Without torch, each
# executable in build-gpu/bench/ runs with its defaults.
benches=()
if [[ -d $build/bench ]]; then
  while IFS= read -r -d '' exe; do
    benches+=("$exe")
  done < <(find "$build/bench" -path '*/CMakeFiles' -prune -o -type f -executable ! -name '*.so*' -print0 | sort -z)
fi
if ((built)) && ((${#benches[@]} == 0)); then
  note "no benchmark executables in $build/bench/"
  steps+=("benchmarks|none built|0|-")
elif ((built)) && python3 -c 'import torch' >/dev/null 2>&1; then
  left=$(remaining)
  [[ -n ${BASIN_CIFAR10_DIR:-} ]] && left=$((left / 2))
  run_step "benchmarks side by side" "$out/side_by_side.log" "$((left - 10))" \
    bash bench/run_side_by_side.sh "$build" "$out/side_by_side"
else
  for exe in "${benches[@]}"; do
    name=$(basename "$exe")
    left=$(remaining)
    run_step "bench $name" "$out/bench-$name.log" "$((left < 120 ? left : 120))" "$exe"
  done
fi

# ------------------------------------------------------------------ training (optional)
# With BASIN_CIFAR10_DIR naming a CIFAR-10 binary folder, a short ResNet-18 SAM
# run on the GPU (GPU_TRAIN_EPOCHS epochs, default 3): metrics.jsonl and the log
# land in OUT_DIR/train-resnet18-sam/.
if ((built)) && [[ -n ${BASIN_CIFAR10_DIR:-} ]]; then
  left=$(remaining)
  run_step "train resnet18 sam" "$out/train.log" "$((left - 10))" \
    "$build/apps/basin-train" --data-dir "$BASIN_CIFAR10_DIR" --model resnet18 --optimizer sam \
    --epochs "${GPU_TRAIN_EPOCHS:-3}" --device cuda --out "$out/train-resnet18-sam"
fi

# ------------------------------------------------------------------ summary
{
  printf '%-28s %-36s %6s  %s\n' step status seconds log
  for s in "${steps[@]}"; do
    IFS='|' read -r name status dt log <<<"$s"
    printf '%-28s %-36s %6s  %s\n' "$name" "$status" "$dt" "${log#"$out"/}"
  done
  if ((failed)); then
    echo "gpu-check: FAILED after $((SECONDS - start))s"
  else
    echo "gpu-check: all steps passed in $((SECONDS - start))s"
  fi
} | tee "$out/summary.txt"
if [[ -f $out/ctest.log ]]; then
  grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -n 1 | sed 's/^/ctest: /'
fi
exit "$failed"
