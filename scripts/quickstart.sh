#!/usr/bin/env bash
# The main job: build basin-train and train on CIFAR-10 with SAM.
#
#   bash scripts/quickstart.sh                       # the default run (below)
#   bash scripts/quickstart.sh --model wrn16-8 --epochs 100   # your own basin-train arguments
#
# Steps: install missing Debian packages (scripts/setup-deps.sh), configure and
# build build/ (Release, CUDA backend when nvcc is found), download CIFAR-10
# into datasets/ when it is not there (scripts/download-cifar.sh; BASIN_DATA_DIR
# moves it), train, then plot the curves when matplotlib is installed.
#
# Default run: on a machine with an NVIDIA GPU, ResNet-18 with SAM (rho 0.05)
# for 200 epochs, the standard recipe; without one, a CPU-sized taste of it:
# ResNet-20 with SAM for one epoch on the first 40,000 training images (about
# 5 minutes on 2 cores), tested on all 10,000. Arguments replace the default run; --data-dir and --out default to
# datasets/ and runs/quickstart/ unless given. Results land in the --out folder:
# config.json, metrics.jsonl, checkpoint.safetensors and curves.png.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BASIN_BUILD_DIR:-build}
data=${BASIN_DATA_DIR:-datasets}
out=runs/quickstart
jobs=$(nproc)
start=$SECONDS

step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "checking Debian packages (scripts/setup-deps.sh)"
bash scripts/setup-deps.sh

# Ninja for a new build directory; an existing one keeps the generator it was made with.
generator=()
[[ -f $build/CMakeCache.txt ]] || generator=(-G Ninja)
step "configuring $build (Release, BASIN_CUDA=AUTO)"
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBASIN_CUDA=AUTO -DBASIN_BUILD_APPS=ON

step "building basin-train with $jobs jobs"
cmake --build "$build" --parallel "$jobs" --target basin-train

args=("$@")
has_option() {
  local option=$1 arg
  for arg in "${args[@]}"; do [[ $arg == "$option" || $arg == "$option="* ]] && return 0; done
  return 1
}
if ((${#args[@]} == 0)); then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    args=(--model resnet18 --optimizer sam --epochs 200 --device cuda --overwrite)
  else
    echo "no NVIDIA GPU found: running a CPU-sized example (pass your own basin-train arguments to change it)"
    args=(--model resnet20 --optimizer sam --epochs 1 --train-subset 40000 --device cpu --overwrite)
  fi
fi
has_option --data-dir || args+=(--data-dir "$data")
has_option --out || args+=(--out "$out")
for ((i = 0; i < ${#args[@]}; ++i)); do
  [[ ${args[i]} == --data-dir ]] && data=${args[i + 1]}
  [[ ${args[i]} == --out ]] && out=${args[i + 1]}
done

if ! has_option --eval && ! has_option --summary; then
  dataset=cifar10
  for ((i = 0; i < ${#args[@]}; ++i)); do [[ ${args[i]} == --dataset ]] && dataset=${args[i + 1]}; done
  if [[ $dataset == cifar10 && ! -f $data/test_batch.bin && ! -f $data/cifar-10-batches-bin/test_batch.bin ]] ||
    [[ $dataset == cifar100 && ! -f $data/test.bin && ! -f $data/cifar-100-binary/test.bin ]]; then
    step "downloading ${dataset^^} into $data (scripts/download-cifar.sh)"
    if ! bash scripts/download-cifar.sh "$data" "${dataset#cifar}"; then
      echo "quickstart: could not download ${dataset^^}. With network access, run:" >&2
      echo "  bash scripts/download-cifar.sh $data ${dataset#cifar}" >&2
      echo "or copy the official binary files into $data/ and run this again." >&2
      exit 1
    fi
  fi
fi

step "training: $build/apps/basin-train ${args[*]}"
"$build/apps/basin-train" "${args[@]}"

if [[ -f $out/metrics.jsonl ]] && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  step "plotting $out/curves.png"
  /usr/bin/python3 scripts/plot_metrics.py "$out/metrics.jsonl" -o "$out/curves.png"
fi

printf '\n==> [%4ds] done: results in %s\n' "$((SECONDS - start))" "$out"
