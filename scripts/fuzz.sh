#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ and runs each for a while.
#
#   bash scripts/fuzz.sh                             # every target, 15 s each
#   bash scripts/fuzz.sh --seconds 3600 safetensors  # one target, an hour
#
# Targets: safetensors, state_dict, cifar, mnist (default: all four, one
# after the other). Steps: install missing Debian packages, Clang and
# libFuzzer's runtime included (scripts/setup-deps.sh fuzz); configure
# build-fuzz/ (BASIN_FUZZ_BUILD_DIR moves it) with Clang and -DBASIN_FUZZ=ON:
# the library with the fuzzer's coverage hooks, AddressSanitizer and
# UndefinedBehaviorSanitizer, nothing else of the project; build the
# harnesses; run each on a copy of its committed corpus
# (tests/fuzz/corpus/<target>/, copied to build-fuzz/fuzz/<target>/corpus/,
# so what the fuzzer adds never lands in the source tree) with its
# dictionary. A longer search is the same command with a bigger --seconds;
# the inputs it found stay in the copy for the next run to start from.
#
# Prints per target the executions, the corpus size and the result. Exits
# non-zero when a target crashes, leaks, runs out of memory or times out on an
# input; the message gives the input's path (build-fuzz/fuzz/<target>/crash-...)
# and the command that replays it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

all_targets=(safetensors state_dict cifar mnist)
# The longest input each target tries: a few kilobytes of safetensors header,
# two CIFAR-100 records and a bit (the first byte picks the layout), small
# idx files.
declare -A max_len=([safetensors]=4096 [state_dict]=4096 [cifar]=8192 [mnist]=2048)
seconds=15
targets=()
while (($#)); do
  case "$1" in
    --seconds)
      [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || { echo "scripts/fuzz.sh: --seconds needs a positive whole number" >&2; exit 2; }
      seconds=$2
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      [[ -v max_len[$1] ]] || { echo "scripts/fuzz.sh: unknown target '$1' (expected: ${all_targets[*]})" >&2; exit 2; }
      targets+=("$1")
      shift
      ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

build=${BASIN_FUZZ_BUILD_DIR:-build-fuzz}
jobs=$(nproc)
start=$SECONDS
step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "checking Debian packages (scripts/setup-deps.sh fuzz)"
bash scripts/setup-deps.sh fuzz

# -O1 -g1: the sanitizers' reports keep file and line, and compiling takes
# half the time of -O2 -g; assertions stay on. Without MPI: the readers under
# test never use it, and its allocations would only add to the leak reports.
generator=()
[[ -f $build/CMakeCache.txt ]] || generator=(-G Ninja)
step "configuring $build (Clang, BASIN_FUZZ=ON)"
CC=clang CXX=clang++ cmake -S . -B "$build" "${generator[@]}" -DBASIN_FUZZ=ON -DBASIN_CUDA=OFF -DBASIN_MPI=OFF \
  -DBASIN_BUILD_TESTS=OFF -DBASIN_BUILD_BENCH=OFF -DBASIN_BUILD_APPS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null

step "building ${targets[*]} with $jobs jobs"
cmake --build "$build" --parallel "$jobs" --target "${targets[@]/#/basin_fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()
for target in "${targets[@]}"; do
  work=$build/fuzz/$target
  program=$build/tests/fuzz/basin_fuzz_$target
  mkdir -p "$work/corpus"
  # The committed seeds join whatever earlier runs found. Inputs saved from
  # earlier failures stay beside it until removed by hand.
  cp tests/fuzz/corpus/"$target"/* "$work/corpus/"
  step "fuzzing $target for ${seconds}s ($work/)"
  status=0
  "$program" -max_total_time="$seconds" -dict="tests/fuzz/$target.dict" -rss_limit_mb=2048 -timeout=10 \
    -max_len="${max_len[$target]}" -artifact_prefix="$work/" -print_final_stats=1 \
    "$work/corpus" >"$work/fuzz.log" 2>&1 </dev/null || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
  inputs=$(find "$work/corpus" -type f | wc -l)
  if ((status == 0)); then
    line=$(printf '%-12s ok       %10s executions, corpus %s inputs' "$target" "${runs:-?}" "$inputs")
  else
    # The input this run saved: libFuzzer prints where it wrote it.
    artifact=$(sed -n 's/.*Test unit written to //p' "$work/fuzz.log" | tail -n 1)
    kind=$(grep -o -m 1 -E 'ERROR: (libFuzzer: [a-z -]+|[A-Za-z]+Sanitizer: [A-Za-z-]+)|runtime error: .*' \
      "$work/fuzz.log" || echo "exit status $status")
    tail -n 60 "$work/fuzz.log"
    line=$(printf '%-12s FAILED   %10s executions: %s; input: %s; replay: %s %s' "$target" "${runs:-?}" "$kind" \
      "${artifact:-none saved}" "$program" "${artifact:-}")
    failed+=("$target")
  fi
  echo "$line"
  summary+=("$line")
done

step "summary (${seconds}s per target; logs in $build/fuzz/<target>/fuzz.log)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "scripts/fuzz.sh: ${failed[*]} failed; the inputs are above. Fix the bug, add a regression test, and commit the input to tests/fuzz/corpus/<target>/ (or its generator to tests/fuzz/make_seeds.py)." >&2
  exit 1
fi
