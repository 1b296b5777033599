#!/usr/bin/env bash
# Installs the Debian packages ncflab builds and tests with; a quick no-op when
# every one is present. Run as root, or as a user with sudo. clang-14 with its runtimes
# (ASan, UBSan, libFuzzer: libclang-rt-14-dev, which apt only recommends) and OpenMP
# (libomp-14-dev) are for the `sanitize` preset. libopenblas0-openmp takes over libblas.so.3
# from Debian's reference BLAS (~5x faster matmuls for LibTorch and the PyTorch baseline
# alike), with the same OpenMP runtime (libgomp) as LibTorch.
set -euo pipefail
packages=(g++ cmake make ccache libtorch-dev libfmt-dev libyaml-cpp-dev
          libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev clang-format python3-torch
          python3-matplotlib python3-venv libopenblas0-openmp
          clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "ncflab: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
