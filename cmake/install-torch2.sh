#!/usr/bin/env bash
# Installs PyPI's PyTorch 2.x (CUDA-enabled, as `pip install torch` gives on Linux) into a
# venv, for the second build (`cmake --preset torch2`) and for the baseline under 2.x:
#
#   cmake/install-torch2.sh [DIR]        (default .deps/torch2; a quick no-op when done)
#
# DIR/libtorch links to the wheel's LibTorch (DIR/libtorch/share/cmake is the CMake prefix
# path) and DIR/bin/python has torch, numpy and PyYAML.
#
# The wheel (0.54 GB) loads ~15 CUDA libraries that `pip install torch` downloads as another
# 2.3 GB of nvidia-* wheels. Where the system has the CUDA 13 toolkit (/usr/local/cuda, as
# the development and CI machines do), it already holds all but four of them (NCCL 2.30,
# cuSPARSELt, NVSHMEM, cuFile), so only those come from PyPI: 0.86 GB downloaded instead of
# 2.8 GB, 2.1 GB installed, about a minute (measured 2026-12-02). NCFLAB_TORCH2_FULL=1 (or a machine
# without that toolkit) installs the wheel with all its dependencies, as a GPU machine
# should: its CUDA 13.2 libraries then match the wheel's exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.deps/torch2}
version=${NCFLAB_TORCH2_VERSION:-2.15.0}
cuda=${CUDA_HOME:-/usr/local/cuda}

if [ -x "$dir/bin/python" ] && [ -e "$dir/libtorch/share/cmake/Torch/TorchConfig.cmake" ] &&
   "$dir/bin/python" -c "import sys, torch, numpy, yaml; sys.exit(torch.__version__.split('+')[0] != '$version')" 2>/dev/null; then
  exit 0
fi

python=${NCFLAB_TORCH2_PYTHON:-python3}
if ! "$python" -c 'import ensurepip' 2>/dev/null; then
  echo "ncflab: $python cannot make a venv (Debian: apt-get install python3-venv; cmake/install-deps.sh does)" >&2
  exit 1
fi
started=$(date +%s)
rm -rf "$dir"
"$python" -m venv "$dir"
pip=("$dir/bin/python" -m pip install -q --disable-pip-version-check)

# The CUDA libraries libtorch_cuda.so loads that the system toolkit has (soname major 13).
system_has_toolkit() {
  local lib
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcusparse.so.12 libcufft.so.12 \
             libcusolver.so.12 libcudnn.so.9 libnvrtc.so.13 libcupti.so.13; do
    [ -e "$cuda/lib64/$lib" ] || return 1
  done
}

if [ "${NCFLAB_TORCH2_FULL:-0}" != 1 ] && system_has_toolkit; then
  echo "ncflab: installing torch $version into $dir (CUDA libraries from $cuda and PyPI)" >&2
  "${pip[@]}" --no-deps "torch==$version" "nvidia-nccl-cu13==2.30.7" "nvidia-cusparselt-cu13==0.8.1" \
    "nvidia-nvshmem-cu13==3.7.2" "nvidia-cufile==1.17.1.22.*"
  "${pip[@]}" filelock "typing-extensions>=4.13" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 "fsspec>=0.8.5" \
    "setuptools>=77.0.3" numpy pyyaml
else
  echo "ncflab: installing torch $version into $dir (with all its CUDA libraries from PyPI)" >&2
  "${pip[@]}" "torch==$version" numpy pyyaml
fi

site=$("$dir/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
ln -sfn "$site" "$dir/libtorch"
# Importing torch loads every library libtorch_cuda.so needs: the check that this install links.
if ! "$dir/bin/python" -c 'import torch' >/dev/null; then
  echo "ncflab: torch $version does not load; NCFLAB_TORCH2_FULL=1 installs all its CUDA libraries" >&2
  exit 1
fi
echo "ncflab: torch $version in $dir ($(du -sh "$dir" | cut -f1), $(($(date +%s) - started)) s);" \
     "CMake prefix path: $dir/libtorch/share/cmake" >&2
