#!/usr/bin/env bash
# The CUDA check we run on the GPU machine: every Criterion test binary (the CUDA twins run there instead of
# skipping), compute-sanitizer memcheck on the CUDA backend test, and the op benchmark (`argen bench --arch ops`).
# Logs and a summary go to $OUT.
# --full adds: memcheck of the LlamaGen op and model tests, racecheck + 3 repeated runs of the attention twins, the
# standard benchmark sets (bench_var.sh, bench_llamagen.sh) and per-op profiles (`argen bench --profile` of VAR-d16
# decode and sampling, GPT-B sampling). --profile: the default checks plus the profiles.
# The checks run side by side (each binary and sanitizer run a background job, OpenBLAS at 2 threads each); the
# benchmarks run after them, one at a time, on a quiet GPU.
#
# Here (no GPU needed):
#   cmake -B build-cuda -DARGEN_CUDA=ON -DARGEN_SHARED=ON && cmake --build build-cuda -j2
#   scripts/gpu_check.sh --pack        # test binaries + bundled libraries (Criterion, ...) into build-cuda/gpu
# On the GPU machine (the `run` tool, carry ["build-cuda/gpu.tar.xz"], from the repository root):
#   tar xJf build-cuda/gpu.tar.xz -C build-cuda
#   scripts/gpu_check.sh [--quick|--no-memcheck|--full|--profile|--setup]
#     --quick: test_cuda_backend + op benchmark; --setup: only the links and fixtures (for single test runs)
# Only 8 files come back from $OUT: run with OUT=/tmp/o and tar that folder into the real $OUT.
# GPU_CHECK_BUDGET=S (seconds; default 0 = no limit): every timeout is clamped to what is left of S and a step with
# less than 10 s left is skipped (noted in its log), so the run ends within S and the tar after it still runs inside
# the device tool's 600 s per call: the runbook (kernels/cuda/NOTES.md) uses 540 under `timeout 570`.
# The build bakes absolute paths in (fixtures, the CLI): when the checkout sits elsewhere there, the original source
# path is linked to it, and the fixture archives (tracked in tests/fixtures) are unpacked into build-cuda/tests.
set -uo pipefail
BUILD=build-cuda
G=$BUILD/gpu

if [ "${1:-}" = "--pack" ]; then
  rm -rf "$G" && mkdir -p "$G/bin"
  for src in tests/test_*.c; do  # only the tests with CUDA twins: the carried tree is limited to 64 MiB
    n=$(basename "$src" .c)
    if grep -q -E 'KT_CUDA|"cuda"' "$src" && [ -x "$BUILD/tests/$n" ]; then cp "$BUILD/tests/$n" "$G/bin/"; fi
  done
  cp "$BUILD/argen" "$G/bin/"
  strip "$G"/bin/* 2>/dev/null
  "$(dirname "$0")/../../shared/tools/gpu-bundle.sh" "$G" "$G"/bin/*
  pwd > "$G/source_dir"
  du -sh "$G"
  # the carried tree is limited to 64 MiB with the tracked files (~35 MiB): carry this archive (~16 MiB) instead
  tar cJf "$BUILD/gpu.tar.xz" -C "$BUILD" gpu && du -sh "$BUILD/gpu.tar.xz"
  exit 0
fi

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/$G/lib:${LD_LIBRARY_PATH:-}"
src=$(cat "$G/source_dir" 2>/dev/null || echo "$PWD")
if [ "$src" != "$PWD" ] && [ ! -e "$src" ]; then
  mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"
fi
mkdir -p "$BUILD/tests/fixtures"
for a in tests/fixtures/*.tar.xz; do tar xJf "$a" -C "$BUILD/tests/fixtures"; done
[ -e "$BUILD/argen" ] || ln -s "$PWD/$G/bin/argen" "$BUILD/argen"  # the CLI path the tests were built with
[ "${1:-}" = "--setup" ] && exit 0  # only the links and fixtures, for targeted runs of single tests

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv; uname -r; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
BUDGET=${GPU_CHECK_BUDGET:-0}
budget() {  # T -> T, or what is left of the budget (5 s kept for the summary) when that is less; never below 0
  local t=$1 left
  if [ "$BUDGET" -gt 0 ]; then
    left=$((BUDGET - SECONDS - 5))
    [ "$left" -lt "$t" ] && t=$left
    [ "$t" -lt 0 ] && t=0
  fi
  echo "$t"
}
bounded() {  # T command...: `timeout T command...` with T clamped to the budget; skipped (rc 124) under 10 s
  local t
  t=$(budget "$1"); shift
  if [ "$t" -lt 10 ]; then
    echo "## skipped: the gpu_check budget (GPU_CHECK_BUDGET=$BUDGET s) is spent: $*"
    return 124
  fi
  timeout "$t" "$@"
}
run() {  # name timeout command...   (one summary line per check in $OUT/name.sum)
  local name=$1 t=$2; shift 2
  local t0=$SECONDS
  (cd "$BUILD/tests" && bounded "$t" "$@") > "$OUT/$name.log" 2>&1
  local rc=$?
  local syn
  syn=$(grep -a "Synthesis" "$OUT/$name.log" | tail -1)
  printf '%-24s rc=%-3s %4ss  %s\n' "$name" "$rc" $((SECONDS - t0)) "$syn" > "$OUT/$name.sum"
  if [ $rc -ne 0 ]; then grep -a -E "\[FAIL\]|failed|Assertion|error" "$OUT/$name.log" | head -40; fi
}
check() { run "$@" & }  # the checks run side by side; the benchmarks wait for a quiet GPU

bin=$PWD/$G/bin
mode=${1:-}
export OPENBLAS_NUM_THREADS=2
# ---- checks, side by side (16 cores; the GPU is shared between them)
check cuda_backend 300 env ARGEN_CUDA_VERBOSE=1 "$bin/test_cuda_backend" --jobs 1 --verbose
if [ "$mode" != "--quick" ]; then
  for t in "$bin"/test_*; do
    n=$(basename "$t")
    [ "$n" = test_cuda_backend ] && continue
    check "${n#test_}" 240 "$t" --jobs 4
  done
  [ "$mode" = "--no-memcheck" ] || check memcheck 300 compute-sanitizer --tool memcheck --target-processes all \
    --print-limit 20 "$bin/test_cuda_backend" --jobs 1
fi
if [ "$mode" = "--full" ]; then
  check memcheck_llama 300 compute-sanitizer --tool memcheck --print-limit 20 "$bin/test_llama_ops" --jobs 1
  check memcheck_llamagen 300 compute-sanitizer --tool memcheck --print-limit 20 "$bin/test_llamagen" --jobs 1 \
    --filter '*cuda*'
  check racecheck_attention 300 compute-sanitizer --tool racecheck --print-limit 20 "$bin/test_cuda_backend" \
    --jobs 1 --filter 'cuda_attention/*'
  for i in 1 2 3; do check "attention_repeat$i" 120 "$bin/test_cuda_backend" --jobs 1 --filter 'cuda_attention/*'; done
fi
wait
for f in memcheck memcheck_llama memcheck_llamagen racecheck_attention; do
  [ -f "$OUT/$f.log" ] && echo "$f: $(grep -a -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$f.log" | tail -1)"
done
cat "$OUT"/*.sum > "$OUT/summary.txt"
echo "---- summary (checks)"
cat "$OUT/summary.txt"

# ---- benchmarks, one at a time, most wanted first
unset OPENBLAS_NUM_THREADS
# Order: what the open issues' targets need first (LlamaGen's table, Inception's throughput), then the A/B runs that
# explain them, then VAR, the host side, the op table and the profiles.
if [ "$mode" = "--full" ]; then
  OUT=$OUT bounded 200 scripts/bench_llamagen.sh "$bin/argen" > /dev/null 2>&1 || echo "bench_llamagen.sh failed" >&2
fi
if [ "$mode" != "--quick" ]; then  # FID Inception throughput (random weights; 256x256 inputs, statistics included)
  {
    for dt in bf16 fp32; do
      bounded 90 "$bin/argen" bench --arch inception --random-init --batch 1,64,200,500 --device cuda --dtype $dt --reps 3
    done
    echo "## bf16, ARGEN_CUDA_CONV_FUSE=0 (each unit as the conv + its bias/ReLU pass) and =1 (always cuDNN's fused call)"
    for f in 0 1; do
      ARGEN_CUDA_CONV_FUSE=$f bounded 90 "$bin/argen" bench --arch inception --random-init --batch 200,500 --device cuda \
        --dtype bf16 --reps 3
    done
  } > "$OUT/bench_inception.md" 2>&1
fi
if [ "$mode" = "--full" ]; then
  {  # A/B of the small-batch LlamaGen paths: fused GEMMs (llama_gemv.cu) off, dependent launches off, the sampler
     # on one block per row instead of a cluster (llama_sample.cu hf_cluster_kernel); SJD and ZipAR with the fused GEMMs
     # off and up to 8 rows only, and their attention unfused; batch 32 with the fused GEMMs up to 32 rows only
    ab=(bench --arch llamagen-b --batch 1 --random-init --device cuda --dtype bf16 --reps 3 --decode)
    echo "## ARGEN_CUDA_FUSED_ROWS=0"; ARGEN_CUDA_FUSED_ROWS=0 bounded 60 "$bin/argen" "${ab[@]}" sequential
    echo "## ARGEN_CUDA_PDL=0"; ARGEN_CUDA_PDL=0 bounded 60 "$bin/argen" "${ab[@]}" sequential
    echo "## ARGEN_CUDA_CLUSTER_ROWS=0"; ARGEN_CUDA_CLUSTER_ROWS=0 bounded 60 "$bin/argen" "${ab[@]}" sequential
    for d in sjd zipar; do  # window forwards of 32 / 16 rows: the compositions, then the fused kernel only to 8 rows
      for f in 0 8; do
        echo "## --decode $d, ARGEN_CUDA_FUSED_ROWS=$f"
        ARGEN_CUDA_FUSED_ROWS=$f bounded 60 "$bin/argen" "${ab[@]}" $d
      done
      echo "## --decode $d, ARGEN_CUDA_WINDOW_CLUSTER=0 (a window's attention as prep + attention kernels)"
      ARGEN_CUDA_WINDOW_CLUSTER=0 bounded 60 "$bin/argen" "${ab[@]}" $d
    done
    echo "## batch 32, ARGEN_CUDA_FUSED_ROWS=32 (the 64-row step on the compositions)"
    ARGEN_CUDA_FUSED_ROWS=32 bounded 60 "$bin/argen" bench --arch llamagen-b --batch 32 --random-init --device cuda \
      --dtype bf16 --reps 3 --decode sequential
    echo "## ARGEN_CUDA_CLUSTER_ROWS=0, ops"
    ARGEN_CUDA_CLUSTER_ROWS=0 bounded 60 "$bin/argen" bench --arch ops --ops llamagen --device cuda --dtype bf16 --reps 3
  } > "$OUT/bench_llamagen_ab.md" 2>&1 || echo "LlamaGen A/B: the last run failed (see bench_llamagen_ab.md)" >&2
  OUT=$OUT bounded 200 scripts/bench_var.sh "$bin/argen" > /dev/null 2>&1 || echo "bench_var.sh failed" >&2
fi
if [ "$mode" != "--quick" ]; then
  {  # the host side on this machine's cores: PNG files (render/fid), SJD's work per forward, precision/recall
    bounded 60 "$bin/argen" bench --arch png --reps 3
    bounded 60 "$bin/argen" bench --arch sjd-host --sjd-window 16 --reps 5
    bounded 90 "$bin/argen" bench --arch pr --device cuda  # precision/recall, 50,000 vs 10,000 (GEMM here, rest host)
  } > "$OUT/bench_host.md" 2>&1 || echo "host benchmarks failed (see bench_host.md)" >&2
fi
{  # the op table (kernels/cuda/NOTES.md): 16-bit weights and maps, then the float32 GEMMs and attention
  bounded 150 "$bin/argen" bench --arch ops --device cuda --dtype bf16 --reps 5
  bounded 60 "$bin/argen" bench --arch ops --ops linear,attention --device cuda --dtype fp32 --reps 5
} > "$OUT/bench.txt" 2>&1 || echo "argen bench --arch ops failed (see bench.txt)" >&2
if [ "$mode" = "--full" ] || [ "$mode" = "--profile" ]; then  # where the time goes, op by op (eager runs)
  p=(--random-init --device cuda --dtype bf16 --reps 1 --warmup 1 --profile)
  {
    bounded 60 "$bin/argen" bench --arch var-d16 --decode-only --batch 1,32 "${p[@]}"
    bounded 60 "$bin/argen" bench --arch var-d16 --batch 1,64 "${p[@]}"
    bounded 60 "$bin/argen" bench --arch llamagen-b --batch 1 "${p[@]}"
  } > "$OUT/profile.md" 2>&1
fi
echo "---- benchmark"
for f in bench_var.md bench_llamagen.md bench_llamagen_ab.md bench_inception.md bench_host.md bench.txt; do [ -f "$OUT/$f" ] && cat "$OUT/$f"; done
echo "---- summary (checks)"
cat "$OUT/summary.txt"
