#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then
#   1. builds with -Werror (CUDA too when nvcc is present; GPU tests skip themselves without a GPU) and runs ctest,
#   2. rebuilds the CPU code with AddressSanitizer + UndefinedBehaviorSanitizer and runs ctest again,
#   3. builds the parser fuzzers (checkpoints, npz, images) with clang/libFuzzer and runs each briefly (FUZZ_SECONDS,
#      default 60).
# Usage: scripts/test.sh [--quick]    (--quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
scripts/deps.sh --fuzz
jobs=$(nproc)

echo "== 1/3 build (-Werror) and ctest" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DARGEN_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j1)
((quick)) && exit 0

echo "== 2/3 ASan + UBSan build (CPU) and ctest" >&2
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DARGEN_CUDA=OFF -DARGEN_SANITIZE=ON -DARGEN_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j1)

echo "== 3/3 fuzz the checkpoint, npz and image parsers" >&2
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
echo "all tests passed" >&2
