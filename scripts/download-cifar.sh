#!/usr/bin/env bash
# Downloads the official binary versions of CIFAR-10 and/or CIFAR-100
# (https://www.cs.toronto.edu/~kriz/cifar.html), checks their published MD5
# sums and unpacks them:
#
#   bash scripts/download-cifar.sh [DIR] [10|100|all]     (defaults: datasets, all)
#
#   DIR/cifar-10-batches-bin/   data_batch_1..5.bin, test_batch.bin, batches.meta.txt
#   DIR/cifar-100-binary/       train.bin, test.bin, fine/coarse_label_names.txt
#
# Pass DIR to the loaders (load_cifar10(DIR, ...), basin-train --data-dir DIR):
# they look inside these folders. An archive already present with the right
# checksum is not fetched again; one with a wrong checksum is fetched anew.
# BASIN_CIFAR_URL replaces the server (a mirror, or file:///path/to/archives).
set -euo pipefail

dir=${1:-datasets}
which=${2:-all}
case "$which" in
  10 | cifar10) sets=(10) ;;
  100 | cifar100) sets=(100) ;;
  all) sets=(10 100) ;;
  *) echo "download-cifar.sh: unknown set '$which' (expected 10, 100 or all)" >&2; exit 2 ;;
esac

base=${BASIN_CIFAR_URL:-https://www.cs.toronto.edu/~kriz}
declare -A archive=([10]=cifar-10-binary.tar.gz [100]=cifar-100-binary.tar.gz)
declare -A md5=([10]=c32a1d4ab5d03f1284b67883e8d87530 [100]=03b5dce01913d631647c71ecec9e9cb8)
declare -A folder=([10]=cifar-10-batches-bin [100]=cifar-100-binary)
declare -A check=([10]=test_batch.bin [100]=test.bin)

fail() { echo "download-cifar.sh: $*" >&2; exit 1; }

if command -v curl >/dev/null 2>&1; then
  fetch() { curl --fail --location --retry 3 --progress-bar --output "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget --tries=3 --show-progress --quiet --output-document="$2" "$1"; }
else
  fail "neither curl nor wget is installed (Debian: sudo apt-get install curl)"
fi
command -v md5sum >/dev/null 2>&1 || fail "md5sum is missing (Debian: coreutils)"
command -v tar >/dev/null 2>&1 || fail "tar is missing"

md5_of() { md5sum "$1" | cut -d' ' -f1; }

mkdir -p "$dir" || fail "cannot create $dir"
for set in "${sets[@]}"; do
  name=${archive[$set]}
  target="$dir/$name"
  if [[ -f "$dir/${folder[$set]}/${check[$set]}" ]]; then
    echo "CIFAR-$set: already unpacked in $dir/${folder[$set]}"
    continue
  fi
  if [[ -f "$target" && "$(md5_of "$target")" == "${md5[$set]}" ]]; then
    echo "CIFAR-$set: $target is already here and its MD5 matches"
  else
    echo "CIFAR-$set: downloading $base/$name"
    rm -f "$target.part"
    fetch "$base/$name" "$target.part" || fail "the download of $base/$name failed (network? proxy?)"
    got=$(md5_of "$target.part")
    if [[ "$got" != "${md5[$set]}" ]]; then
      rm -f "$target.part"
      fail "$name has MD5 $got, expected ${md5[$set]} (the published sum): the download is corrupt or incomplete; run again"
    fi
    mv "$target.part" "$target"
    echo "CIFAR-$set: MD5 ${md5[$set]} matches"
  fi
  tar -xzf "$target" -C "$dir" || fail "unpacking $target failed (disk full?)"
  [[ -f "$dir/${folder[$set]}/${check[$set]}" ]] || fail "$target did not contain ${folder[$set]}/${check[$set]}"
  echo "CIFAR-$set: unpacked into $dir/${folder[$set]}"
done
echo "done: pass '$dir' as the data directory"
