#!/usr/bin/env bash
# Installs the Debian packages basin needs to build and run its tests, and
# only those that are missing. Quiet when everything is already installed.
#
#   bash scripts/setup-deps.sh          # what building and testing need
#   bash scripts/setup-deps.sh fuzz     # that, plus Clang and libFuzzer (scripts/fuzz.sh)
#
# The CUDA toolkit is not installed here: the build finds it at
# /usr/local/cuda when it is present and builds the CPU backend alone when not.
# python3-torch is only needed to regenerate the test fixtures in
# tests/reference/, never to run the tests.
set -euo pipefail

# libboost-context-dev: the fibers of the CUDA emulator (-DBASIN_CUDA=EMULATE).
# libdnnl-dev: oneDNN, the CPU engine's convolutions and GEMM (core/cpu_engine.h);
# its CMake package looks for OpenCL (Debian builds it with an OpenCL GPU
# runtime, which basin does not use), hence ocl-icd-opencl-dev.
# libopenblas-openmp-dev: OpenBLAS built with OpenMP, the engine's float64
# convolutions and GEMM; its threads follow the engine's thread count.
# libopenmpi-dev, openmpi-bin: Open MPI, data-parallel training (mpirun
# basin-train; docs/distributed.md) and its tests.
packages=(cmake ninja-build g++ catch2 libcli11-dev nlohmann-json3-dev libboost-context-dev
          libdnnl-dev ocl-icd-opencl-dev libopenblas-openmp-dev libopenmpi-dev openmpi-bin)
# Optional groups, named on the command line, add to those.
for group in "$@"; do
  case "$group" in
    # Clang 14 (bookworm's) and its runtimes: libFuzzer and the sanitizers.
    fuzz) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "setup-deps: unknown package group '$group' (expected: fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup-deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "setup-deps: done"
