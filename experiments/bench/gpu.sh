#!/usr/bin/env bash
# ncflab on a CUDA GPU in one go: build against the machine's PyTorch 2.x LibTorch, run
# the whole test suite (the CUDA tests included), and benchmark 1…4096-member ensembles
# against PyTorch (and JAX, where installed) on the same GPU. Writes OUT/gpu.md (the
# table), OUT/ctest.log and OUT/build.log.
#
#   experiments/bench/gpu.sh [OUT]          (default OUT: gpu-results)
#
# Needs python3 with a CUDA build of PyTorch 2.x (its LibTorch is what ncflab links),
# cmake, a C++17 compiler and the CUDA toolkit; no package registry. fmt, yaml-cpp,
# GoogleTest, CLI11 and nlohmann-json come from the system when installed, or as Debian
# packages brought along in .deps/offline:
#   here:  ../shared/offline-deps.sh download .deps/offline nlohmann-json3-dev
#          cp ../shared/offline-deps.sh .deps/offline/
#   there: experiments/bench/gpu.sh        (unpacks them itself)
# Set NCFLAB_GPU_QUICK=1 for a smoke run (fewer steps, ensembles up to 256).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-gpu-results}
mkdir -p "$out"
python=${PYTHON:-python3}
started=$(date +%s)

if ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu.sh: $python's PyTorch sees no CUDA device" >&2
  exit 1
fi
"$python" -c 'import torch; print(f"gpu.sh: PyTorch {torch.__version__}, {torch.cuda.get_device_name()}")'
prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
if [ -d .deps/offline ] && compgen -G ".deps/offline/*.deb" >/dev/null; then
  bash .deps/offline/offline-deps.sh unpack .deps/offline >/dev/null
  prefix="$prefix;$PWD/.deps/offline/root/usr"
  export LD_LIBRARY_PATH="$PWD/.deps/offline/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
jobs=$(nproc)

{
  cmake -S . -B build-gpu "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        -DNCFLAB_TEST_PYTHON="$(command -v "$python")"
  cmake --build build-gpu -j"$jobs"
} >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; echo "gpu.sh: build failed" >&2; exit 1; }
grep -E "ncflab: LibTorch" "$out/build.log" || true
echo "gpu.sh: built in $(($(date +%s) - started)) s"

# The CUDA tests must run, not skip: a skip here means the build or the device is wrong.
tests_ok=1
ctest --test-dir build-gpu -j"$((jobs / 2))" --output-on-failure >"$out/ctest.log" 2>&1 || tests_ok=0
tail -4 "$out/ctest.log"
if ! build-gpu/tests/ncflab_tests --gtest_filter='*CUDA*:DeviceSteps.*' >"$out/cuda-tests.log" 2>&1 ||
   grep -q "SKIPPED" "$out/cuda-tests.log"; then
  tests_ok=0
fi
grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$out/cuda-tests.log" || true

quick=()
[ "${NCFLAB_GPU_QUICK:-0}" = 1 ] && quick=(--quick)
"$python" experiments/bench/gpu_bench.py --ncflab build-gpu/ncflab --markdown "$out/gpu.md" "${quick[@]}"
echo "gpu.sh: done in $(($(date +%s) - started)) s; tests $([ $tests_ok = 1 ] && echo passed || echo FAILED)"
[ $tests_ok = 1 ]
