#!/usr/bin/env bash
# Builds basin and runs its whole test suite.
#
#   bash scripts/test.sh                          # everything
#   bash scripts/test.sh -R softmax               # extra arguments go to ctest
#   BASIN_CUDA=EMULATE bash scripts/test.sh       # CUDA code on the CPU emulator
#
# Steps: install missing Debian packages (scripts/setup-deps.sh), configure
# build/ (Release, Ninja, CUDA backend when nvcc is found), build on every core,
# run ctest in parallel. The build directory can be moved with BASIN_BUILD_DIR;
# BASIN_CMAKE_ARGS adds options to the configure step (CI compiles one CUDA
# architecture: -DCMAKE_CUDA_ARCHITECTURES=90). Exits non-zero when any step
# fails. On a machine without a GPU the [cuda] tests are reported by ctest as
# skipped (listed under "did not run"); with BASIN_CUDA=EMULATE (build
# directory build-emulate/) they run on basin's CUDA emulator, which needs no
# GPU and no CUDA toolkit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cuda=${BASIN_CUDA:-AUTO}
case "$cuda" in
  AUTO | ON | OFF) default_build=build ;;
  EMULATE) default_build=build-emulate ;;
  *) echo "scripts/test.sh: BASIN_CUDA='$cuda' (expected AUTO, ON, OFF or EMULATE)" >&2; exit 2 ;;
esac
build=${BASIN_BUILD_DIR:-$default_build}
jobs=$(nproc)
start=$SECONDS

step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "checking Debian packages (scripts/setup-deps.sh)"
bash scripts/setup-deps.sh

# Ninja for a new build directory; an existing one keeps the generator it was made with.
generator=()
[[ -f $build/CMakeCache.txt ]] || generator=(-G Ninja)
step "configuring $build (Release, BASIN_CUDA=$cuda)"
read -r -a extra_args <<<"${BASIN_CMAKE_ARGS:-}"
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBASIN_CUDA="$cuda" "${extra_args[@]}"

step "building with $jobs jobs"
cmake --build "$build" --parallel "$jobs"

step "running the tests: ctest -j$jobs $*"
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$jobs" "$@"

printf '\n==> [%4ds] tests passed\n' "$((SECONDS - start))"
