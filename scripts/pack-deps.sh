#!/usr/bin/env bash
# Copies basin's header-only build dependencies from this machine's Debian
# packages into .deps/ (git-ignored), laid out as a CMake prefix:
#
#   .deps/include/catch2/           .deps/lib/cmake/Catch2/       (catch2)
#   .deps/include/nlohmann/         .deps/share/cmake/nlohmann_json/  (nlohmann-json3-dev)
#   .deps/include/CLI/              .deps/share/cmake/CLI11/      (libcli11-dev)
#
# A machine without those packages (the GPU machine: nvcc, CMake, ninja and
# Python, no apt, no network) then configures basin with
#   cmake ... -DCMAKE_PREFIX_PATH=$PWD/.deps
# and find_package(Catch2 2), find_package(nlohmann_json 3) and
# find_package(CLI11) resolve inside .deps. scripts/gpu-check.sh does that.
#
#   bash scripts/pack-deps.sh            # writes .deps/ at the repository root
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dest=.deps

required=(catch2 nlohmann-json3-dev)
optional=(libcli11-dev)

for pkg in "${required[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
    echo "pack-deps: $pkg is not installed (run: bash scripts/setup-deps.sh)" >&2
    exit 1
  fi
done
packages=("${required[@]}")
for pkg in "${optional[@]}"; do
  if dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
    packages+=("$pkg")
  else
    echo "pack-deps: $pkg is not installed; skipping it"
  fi
done

rm -rf "$dest"
mkdir -p "$dest"

# Every regular file a package installs under /usr/include, /usr/lib or
# /usr/share/cmake goes to the same place under .deps (documentation and
# pkg-config files are left out). Symlinks are copied as the files they name.
for pkg in "${packages[@]}"; do
  count=0
  while IFS= read -r path; do
    [[ -f "$path" ]] || continue
    case "$path" in
      /usr/include/* | /usr/lib/* | /usr/share/cmake/*) ;;
      *) continue ;;
    esac
    case "$path" in
      */pkgconfig/*) continue ;;
    esac
    rel=${path#/usr/}
    mkdir -p "$dest/$(dirname "$rel")"
    cp -L "$path" "$dest/$rel"
    count=$((count + 1))
  done < <(dpkg -L "$pkg")
  echo "pack-deps: $pkg: $count files"
done

# Debian's Catch2 config and targets files compare their own location with the
# absolute /usr/lib/cmake/Catch2 (to survive a /lib -> /usr/lib symlink) and
# then use /usr as the prefix. Drop that check: the prefix must always be
# computed relative to the file, so it lands inside .deps.
while IFS= read -r -d '' file; do
  sed -i -e '/get_filename_component(_realCurr /,/unset(_realCurr)/d' \
         -e '/cross-prefix symbolic link/d' -e '/Use original install prefix when loaded/d' "$file"
done < <(find "$dest" -name '*.cmake' -print0)

# Nothing left may name a /usr path: the GPU machine has none of these files there.
if grep -rnE '^[^#]*/usr/' "$dest" --include='*.cmake'; then
  echo "pack-deps: the CMake files above still name /usr paths" >&2
  exit 1
fi

echo "pack-deps: wrote $dest ($(du -sh "$dest" | cut -f1)); configure with -DCMAKE_PREFIX_PATH=$root/$dest"
