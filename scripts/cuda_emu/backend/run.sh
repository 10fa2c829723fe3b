#!/usr/bin/env bash
# Runs the project's test suite with the CUDA backend emulated on the CPU (README.md here): the GPU twins of every
# op and model test, CUDA graph capture and replay, `argen sample --device cuda`, on a machine without a GPU.
#
#   scripts/cuda_emu/backend/run.sh [MODE]
#     selftest  the emulated cuBLAS/cuBLASLt and cuDNN against naive loops (seconds)
#     quick     (default) build build-cudaemu (-DARGEN_CUDA=EMU) and run the CUDA-facing tests: the op twins,
#               the CUDA backend and map tests, the VAR/LlamaGen model tests and decoding strategies (~4 min, 2 cores,
#               build excluded), every stream queueing its work (ARGEN_EMU_STREAMS=lazy); then the tests that use a
#               second stream (side uploads: cuda_backend, fid_cuda_quick) again with the main streams running their
#               work at once and the side streams late (=mixed, ~2.5 min), which shows a missing join whatever the
#               host synchronises after it
#     full      the whole ctest suite against the emulated backend (adds the Inception/FID and CLI tests on the
#               emulated GPU: over an hour, the FID tests run Inception-v3 through the emulated cuDNN)
#     asan      quick, built with ASan/UBSan (build-cudaemu-asan): device allocations are exact-sized, so a kernel or
#               library call past its buffer is reported like compute-sanitizer's memcheck would (~38 min on 2
#               cores, build included; 12 of 12 tests clean in the ninth session)
#   ARGEN_EMU_SCHEDULE=forward|reverse|random|greedy|greedy_rev picks the thread order (README.md);
#   ARGEN_EMU_STREAMS=lazy|eager|mixed picks when streams run their work (emu_runtime.cpp, "Streams").
# Needs the CUDA and cuDNN headers (no GPU, no CUDA libraries) and the packages of scripts/deps.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here=$root/scripts/cuda_emu/backend
mode=${1:-quick}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
[ -f "$cuda_inc/cuda_runtime.h" ] && [ -f "$cuda_inc/cudnn.h" ] ||
  { echo "backend/run.sh: CUDA/cuDNN headers not found in $cuda_inc (set CUDA_HOME)" >&2; exit 2; }
# the tests whose CUDA twins (or CUDA paths) run here; the rest of the suite does not touch the backend
quick_re='^(ops|llama_ops|var_vqvae|var|vq16|llamagen|decoding|sampling|cuda_backend|cuda_maps|api|fid_cuda_quick|precision_recall)$'

build() {  # build DIR [cmake args...]
  local dir=$1; shift
  mkdir -p "$dir"
  cmake -S "$root" -B "$dir" -DARGEN_CUDA=EMU -DARGEN_WERROR=ON "$@" > "$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log" >&2; return 1; }
  cmake --build "$dir" -j"$(nproc)" > "$dir/build.log" 2>&1 || { grep -m20 -E 'error|Error' "$dir/build.log" >&2; return 1; }
}

case $mode in
  selftest)
    for lib in blas dnn; do
      bin=${TMPDIR:-/tmp}/emu_${lib}_selftest
      g++ -std=gnu++17 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -I"$cuda_inc" -I"$root" \
        "$here/emu_$lib.cpp" "$here/emu_${lib}_selftest.cpp" -o "$bin"
      "$bin" 2> "$bin.err" | tail -1
    done ;;
  quick | full)
    build "$root/build-cudaemu"
    args=(--test-dir "$root/build-cudaemu" -j"$(nproc)" --timeout 3600 --output-on-failure)
    [ "$mode" = quick ] && args+=(-R "$quick_re")
    ctest "${args[@]}"
    ARGEN_EMU_STREAMS=mixed ctest --test-dir "$root/build-cudaemu" -j"$(nproc)" --timeout 3600 --output-on-failure \
      -R '^(cuda_backend|fid_cuda_quick)$' ;;
  asan)
    build "$root/build-cudaemu-asan" -DARGEN_SANITIZE=ON
    ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$root/build-cudaemu-asan" -j"$(nproc)" --timeout 3600 \
      --output-on-failure -R "$quick_re" ;;
  *) echo "usage: backend/run.sh [selftest|quick|full|asan]" >&2; exit 2 ;;
esac
