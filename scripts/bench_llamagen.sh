#!/usr/bin/env bash
# The standard LlamaGen benchmark set (issue 4's table): GPT-B at 256x256 (16x16 tokens), batch 1 and 32 sequential,
# batch 1 with SJD (window 16) and ZipAR (window 8), and GPT-L batch 1 sequential; random weights, the official demo
# settings (cfg 4, top-k 2000, top-p 1), VQ decode included. Prints markdown tables; with OUT set also writes them to
# $OUT/bench_llamagen.md.
# Usage: scripts/bench_llamagen.sh [ARGEN_BINARY]     env: DEVICE (cuda), DTYPE (bf16), REPS (3), WARMUP (1)
set -uo pipefail  # no -e: a failing line is noted and the set goes on
argen=${1:-build/argen}
bench() { "$argen" bench "$@" 2>&1 || echo "## FAILED (exit $?): argen bench $*"; }
common=(--random-init --device "${DEVICE:-cuda}" --dtype "${DTYPE:-bf16}" --reps "${REPS:-3}" --warmup "${WARMUP:-1}")
{
  echo "# argen bench, $(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo cpu)"
  bench --arch llamagen-b --batch 1,32 --decode sequential "${common[@]}"
  bench --arch llamagen-b --batch 1 --decode sjd "${common[@]}"
  bench --arch llamagen-b --batch 1 --decode zipar "${common[@]}"
  bench --arch llamagen-l --batch 1 --decode sequential "${common[@]}"
} | tee "${OUT:-/tmp}/bench_llamagen.md"
