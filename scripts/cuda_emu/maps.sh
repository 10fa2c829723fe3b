#!/usr/bin/env bash
# Runs the map / norm kernels (norm.cu, elementwise.cu, resample.cu, dense.cu's own kernels, conv.cu's own kernels)
# with their real launchers on the CPU under the CUDA execution-model emulator and compares them with the CPU backend
# (test_maps.cpp; see README.md). Output in build-emu/maps/.
#   scripts/cuda_emu/maps.sh [quick|full|big|mut|asan]     (default quick)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/cuda_emu
out=${BUILD_EMU:-$root/build-emu}/maps
mode=${1:-quick}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
lib=$root/build/libargen.a
[ -f "$cuda_inc/cuda_bf16.h" ] || { echo "maps.sh: CUDA headers not found in $cuda_inc (set CUDA_HOME)" >&2; exit 2; }
[ -f "$lib" ] || { echo "maps.sh: $lib missing: cmake -B build && cmake --build build" >&2; exit 2; }
mkdir -p "$out"
python3 "$here/extract_maps.py" "$root" "$out/gen_maps.inc"
cxx=(g++ -std=gnu++17 -g -fno-strict-aliasing -Wall -Wno-unknown-pragmas -Wno-unused-variable -Wno-unused-function -I"$root" -I"$out"
     -I"$here" -I"$cuda_inc")
libs=("$lib" -lopenblas -llapacke -lpng -ljpeg -lz -fopenmp -lm)
if ar t "$lib" | grep -q '\.cu\.o$'; then
  cuda_lib=${CUDA_HOME:-/usr/local/cuda}/lib64
  libs+=(-L"$cuda_lib" -Wl,-rpath,"$cuda_lib" -lcudnn -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lpthread -lrt)
fi
case $mode in
  quick | full | big)
    "${cxx[@]}" -O2 "$here/test_maps.cpp" "$here/emu_cuda.cpp" -o "$out/test_maps" "${libs[@]}"
    "$out/test_maps" "$mode" | tee "$out/$mode.log" | tail -3 ;;
  asan)
    "${cxx[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer "$here/test_maps.cpp" "$here/emu_cuda.cpp" \
      -o "$out/test_maps_asan" "${libs[@]}"
    ASAN_OPTIONS=detect_leaks=0 "$out/test_maps_asan" quick | tee "$out/asan.log" | tail -3 ;;
  mut)  # every planted bug must be caught (a non-zero exit of its run)
    rc=0
    for m in $(python3 "$here/mutate_maps.py" list "$out"); do
      python3 "$here/mutate_maps.py" "$m" "$out" > /dev/null
      "${cxx[@]}" -O1 -fsanitize=address -DGEN_INC="\"mut_$m.inc\"" "$here/test_maps.cpp" "$here/emu_cuda.cpp" \
        -o "$out/mut_$m" "${libs[@]}"
      set_=mut; case $m in big_*) set_=big ;; esac
      if ASAN_OPTIONS=detect_leaks=0 "$out/mut_$m" $set_ > "$out/mut_$m.log" 2>&1; then
        echo "mutant $m: NOT caught"; rc=1
      else
        echo "mutant $m: caught ($(grep -m1 -E '^FAIL|ERROR: AddressSanitizer|DEADLOCK' "$out/mut_$m.log" | cut -c1-150))"
      fi
    done
    exit $rc ;;
  *) echo "usage: maps.sh [quick|full|big|mut|asan]" >&2; exit 2 ;;
esac
