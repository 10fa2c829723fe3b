#!/usr/bin/env bash
# Runs kernels/cuda's own kernels, with their real launchers, on the CPU under a CUDA execution-model emulator and
# compares them with the CPU backend: a check of the kernels' logic (indexing, barriers, warp exchanges, tensor-core
# fragments, cp.async pipelines, the launchers' grids and shared-memory sizes) on a machine without a GPU. See
# README.md for what it can and cannot show.
#
#   scripts/cuda_emu/run.sh [SUITE] [MODE]
#     SUITE  all (default) | llama (LlamaGen's layer kernels) | sampler (the token samplers, CUB emulated) |
#            var (VAR's attention, tensor cores emulated) | maps (norms, elementwise, resampling, dense/conv kernels)
#     MODE   quick (default; all suites ~7 min on 2 cores) | full (~2 h in all) | asan (a quick set under
#            ASan/UBSan) | fma (quick, g++ contracting multiply-adds like nvcc) | mut (every planted bug of the suite's
#            mutate script must be caught) | selftest (llama: the emulator itself; var: the emulated
#            ldmatrix/mma/cp.async against the PTX layouts) | big (maps: index widths at >= 2^31 elements, sparse)
#   A MODE alone (run.sh quick) runs it for every suite. MUTANTS="name ..." limits mut to those mutants.
#
# Needs: g++, python3, the CUDA headers (/usr/local/cuda/include: the host-side bf16/fp16 types), and the CPU library
# build/libargen.a (cmake -B build && cmake --build build). Output in build-emu/SUITE/ (MODE.log; the emulator's notes
# in MODE.err).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/cuda_emu
suites_all=(llama sampler var maps)
suite=all
case ${1:-} in all | llama | sampler | var | maps) suite=$1; shift ;; esac
mode=${1:-quick}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
lib=$root/build/libargen.a
[ -f "$cuda_inc/cuda_bf16.h" ] || { echo "run.sh: CUDA headers not found in $cuda_inc (set CUDA_HOME)" >&2; exit 2; }
[ -f "$lib" ] || { echo "run.sh: $lib missing: cmake -B build && cmake --build build" >&2; exit 2; }

# -fno-strict-aliasing: the kernels read vectors through reinterpreted pointers (the CUDA idiom nvcc supports)
cxx=(g++ -std=gnu++17 -g -fno-strict-aliasing -Wall -Wno-unknown-pragmas -Wno-unused-variable -Wno-unused-function
     -I"$root" -I"$here" -I"$cuda_inc")
libs=("$lib" -lopenblas -llapacke -lpng -ljpeg -lz -fopenmp -lm)
if ar t "$lib" | grep -q '\.cu\.o$'; then  # a CUDA build of the library: its backend objects need the runtime
  cuda_lib=${CUDA_HOME:-/usr/local/cuda}/lib64
  libs+=(-L"$cuda_lib" -Wl,-rpath,"$cuda_lib" -lcudnn -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lpthread -lrt)
fi

# run_suite SUITE MODE: builds build-emu/SUITE/test and runs it; non-zero on any failure
run_suite() {
  local s=$1 m=$2 out=${BUILD_EMU:-$root/build-emu}/$1 test mutate asan_set
  case $s in
    llama) test=test_llama mutate=mutate.py asan_set=asan ;;
    sampler) test=test_sampler mutate=mutate_sampler.py asan_set=asan ;;
    var) test=test_var_attn mutate=mutate_var.py asan_set=asan ;;
    maps) test=test_maps mutate=mutate_maps.py asan_set=quick ;;
  esac
  mkdir -p "$out"
  python3 "$here/extract.py" "$root" "$out/gen_$s.inc" "$s" 2> "$out/extract.log" || { cat "$out/extract.log" >&2; return 1; }
  local src=("$here/$test.cpp" "$here/emu_cuda.cpp") inc=(-I"$out" -DGEN_INC="\"gen_$s.inc\"")
  local bin=$out/$test-$m set=$m env=()
  rm -f "$bin"
  case $m in
    quick | full | big)
      [ "$m" = big ] && [ "$s" != maps ] && { echo "[$s] no big set"; return 0; }
      "${cxx[@]}" -O2 "${inc[@]}" "${src[@]}" -o "$bin" "${libs[@]}" ;;
    asan)
      "${cxx[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer "${inc[@]}" "${src[@]}" -o "$bin" \
        "${libs[@]}"
      set=$asan_set env=(ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1) ;;
    fma)
      "${cxx[@]}" -O2 -mfma -ffp-contract=fast "${inc[@]}" "${src[@]}" -o "$bin" "${libs[@]}"
      set=quick ;;
    selftest)
      case $s in
        llama) "${cxx[@]}" -O1 "$here/emu_selftest.cpp" "$here/emu_cuda.cpp" -o "$out/emu_selftest"
               "$out/emu_selftest"; return ;;
        var) "${cxx[@]}" -O2 "${inc[@]}" "${src[@]}" -o "$bin" "${libs[@]}" ;;
        *) echo "[$s] no selftest"; return 0 ;;
      esac ;;
    mut)
      local rc=0 mm mset names
      names=$(python3 "$here/$mutate" list "$out") && [ -n "$names" ] || { echo "[$s] $mutate list failed" >&2; return 1; }
      [ -n "${MUTANTS:-}" ] && names=$MUTANTS  # MUTANTS="a b": only these
      for mm in $names; do
        python3 "$here/$mutate" "$mm" "$out" > /dev/null
        rm -f "$out/mut_$mm"
        "${cxx[@]}" -O1 -fsanitize=address -I"$out" -DGEN_INC="\"mut_$mm.inc\"" "${src[@]}" -o "$out/mut_$mm" \
          "${libs[@]}" || { echo "[$s] mutant $mm: build failed" >&2; rc=1; continue; }
        mset=mut; case $s/$mm in maps/big_*) mset=big ;; esac
        if ASAN_OPTIONS=detect_leaks=0 timeout 1200 "$out/mut_$mm" $mset > "$out/mut_$mm.log" 2>&1; then
          echo "[$s] mutant $mm: NOT caught"; rc=1
        else
          echo "[$s] mutant $mm: caught ($(grep -m1 -E '^FAIL|ERROR: AddressSanitizer|DEADLOCK|runtime error' \
            "$out/mut_$mm.log" | cut -c1-120))"
        fi
      done
      return $rc ;;
    *) echo "usage: run.sh [all|llama|sampler|var|maps] [quick|full|asan|fma|mut|selftest|big]" >&2; exit 2 ;;
  esac
  local rc=0
  [ -x "$bin" ] || { echo "[$s] $m: build failed" >&2; return 1; }
  env "${env[@]}" "$bin" "$set" > "$out/$m.log" 2> "$out/$m.err" || rc=$?
  if [ "$m" = asan ] && grep -q "ERROR: AddressSanitizer\|runtime error" "$out/$m.err"; then
    grep -m5 "ERROR: AddressSanitizer\|runtime error" "$out/$m.err" >&2; rc=1
  fi
  echo "[$s] $m: $(grep -E '^[0-9]+ cases|^selftest' "$out/$m.log" | tail -1)"
  if [ $rc != 0 ]; then
    grep -m10 '^FAIL' "$out/$m.log" >&2 || true
    tail -5 "$out/$m.err" >&2
    echo "[$s] $m: FAILED (exit $rc; $out/$m.log)" >&2
  fi
  return $rc
}

[ "$suite" = all ] && suites=("${suites_all[@]}") || suites=("$suite")
failed=()
for s in "${suites[@]}"; do
  run_suite "$s" "$mode" || failed+=("$s")
done
if [ ${#failed[@]} != 0 ]; then
  echo "run.sh $mode: failed: ${failed[*]}" >&2
  exit 1
fi
