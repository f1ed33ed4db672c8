#!/usr/bin/env bash
# Builds basin and runs its whole test suite.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -R softmax      # extra arguments go to ctest
#
# Steps: install missing Debian packages (scripts/setup-deps.sh), configure
# build/ (Release, Ninja, CUDA backend when nvcc is found), build on every core,
# run ctest in parallel. The build directory can be moved with BASIN_BUILD_DIR.
# Exits non-zero when any step fails. On a machine without a GPU the [cuda]
# tests are reported by ctest as skipped (listed under "did not run").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BASIN_BUILD_DIR:-build}
jobs=$(nproc)
start=$SECONDS

step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "checking Debian packages (scripts/setup-deps.sh)"
bash scripts/setup-deps.sh

# Ninja for a new build directory; an existing one keeps the generator it was made with.
generator=()
[[ -f $build/CMakeCache.txt ]] || generator=(-G Ninja)
step "configuring $build (Release, BASIN_CUDA=AUTO)"
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBASIN_CUDA=AUTO

step "building with $jobs jobs"
cmake --build "$build" --parallel "$jobs"

step "running the tests: ctest -j$jobs $*"
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$jobs" "$@"

printf '\n==> [%4ds] tests passed\n' "$((SECONDS - start))"
