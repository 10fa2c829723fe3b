#!/usr/bin/env bash
# Runs the GPU token samplers (kernels/cuda/sample.cu: VAR's top-k/top-p sampler and more_smooth; llama.cu: LlamaGen's
# sampler and probabilities, radix-select and block-sort paths, and the raster step counter kernels) on the CPU under
# the CUDA execution-model emulator, CUB's block sort and scan emulated by emu_cub.h, against the CPU backend.
#
#   scripts/cuda_emu/run_sampler.sh [quick|full|asan|fma|mut]   (default quick: ~330 cases, ~2 min on 2 cores;
#                                                               full: ~2450 cases, ~21 min)
#
# Needs what run.sh needs (g++, python3, the CUDA headers, build/libargen.a). Output in build-emu/sampler/. The
# emulator's notes go to <mode>.err (the radix select's divergent warp ops note harmlessly there).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/cuda_emu
out=${BUILD_EMU_SAMPLER:-$root/build-emu/sampler}
mode=${1:-quick}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
lib=$root/build/libargen.a
[ -f "$cuda_inc/cuda_bf16.h" ] || { echo "run_sampler.sh: CUDA headers not found in $cuda_inc (set CUDA_HOME)" >&2; exit 2; }
[ -f "$lib" ] || { echo "run_sampler.sh: $lib missing: cmake -B build && cmake --build build" >&2; exit 2; }
mkdir -p "$out"
python3 "$here/extract_sampler.py" "$root" "$out/gen_sampler.inc"
cxx=(g++ -std=gnu++17 -g -Wall -Wno-unknown-pragmas -Wno-unused-variable -I"$root" -I"$out" -I"$here" -I"$cuda_inc")
libs=("$lib" -lopenblas -llapacke -lpng -ljpeg -lz -fopenmp -lm)
if ar t "$lib" | grep -q '\.cu\.o$'; then  # a CUDA build of the library: its backend objects need the runtime
  cuda_lib=${CUDA_HOME:-/usr/local/cuda}/lib64
  libs+=(-L"$cuda_lib" -Wl,-rpath,"$cuda_lib" -lcudnn -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lpthread -lrt)
fi
case $mode in
  quick | full)
    "${cxx[@]}" -O2 "$here/test_sampler.cpp" "$here/emu_cuda.cpp" -o "$out/test_sampler" "${libs[@]}"
    "$out/test_sampler" "$mode" 2> "$out/$mode.err" | tee "$out/$mode.log" | tail -4 ;;
  asan)
    "${cxx[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer "$here/test_sampler.cpp" "$here/emu_cuda.cpp" \
      -o "$out/test_sampler_asan" "${libs[@]}"
    ASAN_OPTIONS=detect_leaks=0 "$out/test_sampler_asan" asan 2> "$out/asan.err" | tee "$out/asan.log" | tail -4
    if grep -q "ERROR: AddressSanitizer\|runtime error" "$out/asan.err"; then
      grep -m5 "ERROR: AddressSanitizer\|runtime error" "$out/asan.err"; exit 1
    fi ;;
  fma)  # g++ contracting multiply-adds as nvcc does by default (more_smooth's a += p * cb becomes an fma)
    "${cxx[@]}" -O2 -mfma -ffp-contract=fast "$here/test_sampler.cpp" "$here/emu_cuda.cpp" -o "$out/test_sampler_fma" \
      "${libs[@]}"
    "$out/test_sampler_fma" quick 2> "$out/fma.err" | tee "$out/fma.log" | tail -4 ;;
  mut)  # every planted bug must be caught (a non-zero exit of its run)
    rc=0
    for m in $(python3 "$here/mutate_sampler.py" list); do
      python3 "$here/mutate_sampler.py" "$m" "$out" > /dev/null
      "${cxx[@]}" -O1 -fsanitize=address -DGEN_INC="\"mut_$m.inc\"" "$here/test_sampler.cpp" "$here/emu_cuda.cpp" \
        -o "$out/mut_$m" "${libs[@]}"
      if ASAN_OPTIONS=detect_leaks=0 "$out/mut_$m" mut > "$out/mut_$m.log" 2>&1; then
        echo "mutant $m: NOT caught"; rc=1
      else
        first=$(grep -m1 -o 'ERROR: AddressSanitizer: [a-z-]*' "$out/mut_$m.log" || grep -m1 '^FAIL' "$out/mut_$m.log" || true)
        echo "mutant $m: caught, $(grep -c '^FAIL' "$out/mut_$m.log" || true) failing cases; first: ${first:0:150}"
      fi
    done
    exit $rc ;;
  *) echo "usage: run_sampler.sh [quick|full|asan|fma|mut]" >&2; exit 2 ;;
esac
