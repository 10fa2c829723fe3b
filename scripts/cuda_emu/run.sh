#!/usr/bin/env bash
# Runs kernels/cuda/llama.cu's LlamaGen kernels (attention: one-warp, split-key, split-key with the RoPE prep fused;
# the prep, RMSNorm, SwiGLU, L2 norm) on the CPU under a CUDA execution-model emulator and compares them with the CPU
# backend: a check of the kernels' logic (indexing, barriers, warp exchanges, the launchers' grids and shared-memory
# sizes) on a machine without a GPU. See README.md for what it can and cannot show.
#
#   scripts/cuda_emu/run.sh [quick|full|asan|fma|selftest|mut]     (default quick: ~190 cases, a few minutes)
#
# Needs: g++, python3, the CUDA headers (/usr/local/cuda/include, for the host-side bf16/fp16 types), and the CPU
# library build/libargen.a (cmake -B build && cmake --build build). Output in build-emu/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/cuda_emu
out=${BUILD_EMU:-$root/build-emu}
mode=${1:-quick}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
lib=$root/build/libargen.a
[ -f "$cuda_inc/cuda_bf16.h" ] || { echo "run.sh: CUDA headers not found in $cuda_inc (set CUDA_HOME)" >&2; exit 2; }
[ -f "$lib" ] || { echo "run.sh: $lib missing: cmake -B build && cmake --build build" >&2; exit 2; }
mkdir -p "$out"
python3 "$here/extract.py" "$root" "$out/gen_llama.inc"
cxx=(g++ -std=gnu++17 -g -Wall -Wno-unknown-pragmas -Wno-unused-variable -I"$root" -I"$out" -I"$cuda_inc")
libs=("$lib" -lopenblas -llapacke -lpng -ljpeg -lz -fopenmp -lm)
if ar t "$lib" | grep -q '\.cu\.o$'; then  # a CUDA build of the library: its backend objects need the runtime
  cuda_lib=${CUDA_HOME:-/usr/local/cuda}/lib64
  libs+=(-L"$cuda_lib" -Wl,-rpath,"$cuda_lib" -lcudnn -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lpthread -lrt)
fi
case $mode in
  quick | full)
    "${cxx[@]}" -O2 "$here/test_llama.cpp" "$here/emu_cuda.cpp" -o "$out/test_llama" "${libs[@]}"
    arg=$([ "$mode" = quick ] && echo quick || true)
    "$out/test_llama" $arg | tee "$out/$mode.log" | tail -3 ;;
  asan)
    "${cxx[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer "$here/test_llama.cpp" "$here/emu_cuda.cpp" \
      -o "$out/test_llama_asan" "${libs[@]}"
    ASAN_OPTIONS=detect_leaks=0 "$out/test_llama_asan" asan | tee "$out/asan.log" | tail -3 ;;
  fma)  # g++ contracting multiply-adds as nvcc does by default
    "${cxx[@]}" -O2 -mfma -ffp-contract=fast "$here/test_llama.cpp" "$here/emu_cuda.cpp" -o "$out/test_llama_fma" \
      "${libs[@]}"
    "$out/test_llama_fma" quick | tee "$out/fma.log" | tail -3 ;;
  selftest)
    "${cxx[@]}" -O1 "$here/emu_selftest.cpp" "$here/emu_cuda.cpp" -o "$out/emu_selftest"
    "$out/emu_selftest" ;;
  mut)  # every planted bug must be caught (a non-zero exit of its run)
    rc=0
    for m in no_merge_sync no_prep_sync corr_no_inf_guard merge_skip_last_warp smem_no_q causal_off_by_one nan_dropped; do
      python3 "$here/mutate.py" "$m" "$out"
      "${cxx[@]}" -O1 -fsanitize=address -DGEN_INC="\"mut_$m.inc\"" "$here/test_llama.cpp" "$here/emu_cuda.cpp" \
        -o "$out/mut_$m" "${libs[@]}"
      if ASAN_OPTIONS=detect_leaks=0 "$out/mut_$m" mut > "$out/mut_$m.log" 2>&1; then
        echo "mutant $m: NOT caught"; rc=1
      else
        echo "mutant $m: caught ($(tail -1 "$out/mut_$m.log" | cut -c1-100))"
      fi
    done
    exit $rc ;;
  *) echo "usage: run.sh [quick|full|asan|fma|selftest|mut]" >&2; exit 2 ;;
esac
