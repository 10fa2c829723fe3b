#!/usr/bin/env bash
# VAR's attention kernels (kernels/cuda/attention_flash.cu, attention.cu) on the CPU under the CUDA emulator, against
# the CPU backend: scripts/cuda_emu/run_var.sh [quick|full|asan|mut]   (output in build-emu/var/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/cuda_emu
out=${BUILD_EMU:-$root/build-emu}/var
mode=${1:-quick}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
lib=$root/build/libargen.a
[ -f "$cuda_inc/cuda_bf16.h" ] || { echo "run_var.sh: CUDA headers not found in $cuda_inc (set CUDA_HOME)" >&2; exit 2; }
[ -f "$lib" ] || { echo "run_var.sh: $lib missing: cmake -B build && cmake --build build" >&2; exit 2; }
mkdir -p "$out"
python3 "$here/extract_var.py" "$root" "$out/gen_var.inc"
cxx=(g++ -std=gnu++17 -g -Wall -Wno-unknown-pragmas -Wno-unused-variable -Wno-unused-function -I"$root" -I"$out" -I"$cuda_inc")
libs=("$lib" -lopenblas -llapacke -lpng -ljpeg -lz -fopenmp -lm)
if ar t "$lib" | grep -q '\.cu\.o$'; then
  cuda_lib=${CUDA_HOME:-/usr/local/cuda}/lib64
  libs+=(-L"$cuda_lib" -Wl,-rpath,"$cuda_lib" -lcudnn -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lpthread -lrt)
fi
src=("$here/test_var_attn.cpp" "$here/emu_cuda.cpp")
case $mode in
  quick | full)
    "${cxx[@]}" -O2 "${src[@]}" -o "$out/test_var_attn" "${libs[@]}"
    "$out/test_var_attn" "$mode" | tee "$out/$mode.log" | tail -3 ;;
  asan)
    "${cxx[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer "${src[@]}" -o "$out/test_var_attn_asan" "${libs[@]}"
    ASAN_OPTIONS=detect_leaks=0 "$out/test_var_attn_asan" asan | tee "$out/asan.log" | tail -3 ;;
  mut)  # every planted bug must be caught (a non-zero exit of its run)
    rc=0
    for m in $(python3 "$here/mutate_var.py" list "$out"); do
      python3 "$here/mutate_var.py" "$m" "$out" > /dev/null
      "${cxx[@]}" -O1 -fsanitize=address -DGEN_INC="\"mut_$m.inc\"" "${src[@]}" -o "$out/mut_$m" "${libs[@]}"
      if ASAN_OPTIONS=detect_leaks=0 timeout 900 "$out/mut_$m" mut > "$out/mut_$m.log" 2>&1; then
        echo "mutant $m: NOT caught"; rc=1
      else
        echo "mutant $m: caught ($(grep -m1 -E '^FAIL|ERROR|DEADLOCK' "$out/mut_$m.log" | cut -c1-150))"
      fi
    done
    exit $rc ;;
  *) echo "usage: run_var.sh [quick|full|asan|mut]" >&2; exit 2 ;;
esac
