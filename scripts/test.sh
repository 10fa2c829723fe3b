#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then
#   1. builds with -Werror (CUDA too when nvcc is present; GPU tests skip themselves without a GPU) and runs ctest,
#   2. rebuilds the CPU code with AddressSanitizer + UndefinedBehaviorSanitizer and runs ctest again,
#   3. builds the parser fuzzers (checkpoints, npz, images, command lines) with clang/libFuzzer and runs each
#      briefly (FUZZ_SECONDS, default 60),
#   4. when the CUDA headers are there, runs the CUDA backend's own kernels on the CPU under the execution-model
#      emulator against the CPU backend (scripts/cuda_emu/run.sh quick: four suites, ~7 min on 2 cores),
#   5. and the whole CUDA backend on the CPU (-DARGEN_CUDA=EMU: emulated runtime, graphs, cuBLAS(Lt), cuDNN) under
#      the CUDA-facing tests: every GPU twin and CUDA model test, with the streams run as late as CUDA allows, then
#      the side-stream tests with the main streams run at once (scripts/cuda_emu/backend/run.sh quick, ~15 min).
# Usage: scripts/test.sh [--quick]    (--quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
scripts/deps.sh --fuzz
jobs=$(nproc)

echo "== 1/5 build (-Werror) and ctest" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DARGEN_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j1)
((quick)) && exit 0

echo "== 2/5 ASan + UBSan build (CPU) and ctest" >&2
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DARGEN_CUDA=OFF -DARGEN_SANITIZE=ON -DARGEN_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j1)

echo "== 3/5 fuzz the checkpoint, npz, image and command-line parsers" >&2
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"

echo "== 4/5 CUDA kernels on the CPU (emulated execution model) vs the CPU backend" >&2
if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_bf16.h" ] && command -v python3 >/dev/null; then
  scripts/cuda_emu/run.sh quick
else
  echo "skipped: no CUDA headers (set CUDA_HOME) or no python3" >&2
fi

echo "== 5/5 the CUDA backend on the CPU (emulated runtime, graphs, cuBLAS/cuDNN): the GPU tests" >&2
if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cudnn.h" ] && command -v python3 >/dev/null; then
  scripts/cuda_emu/backend/run.sh quick
else
  echo "skipped: no CUDA/cuDNN headers (set CUDA_HOME) or no python3" >&2
fi
echo "all tests passed" >&2
