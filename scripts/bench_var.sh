#!/usr/bin/env bash
# The standard VAR benchmark set (issue 3's table): VAR-d16 batch 1/8/32/64, VAR-d30 batch 1/32, and the VQVAE decode
# alone at batch 32, all with random weights and the official demo settings (cfg 4, top-k 900, top-p 0.95).
# Prints markdown tables; with OUT set also writes them to $OUT/bench_var.md.
# Usage: scripts/bench_var.sh [ARGEN_BINARY]     env: DEVICE (cuda), DTYPE (bf16), REPS (5), WARMUP (2)
set -uo pipefail  # no -e: a failing line is noted and the set goes on
argen=${1:-build/argen}
bench() { "$argen" bench "$@" 2>&1 || echo "## FAILED (exit $?): argen bench $*"; }
common=(--random-init --device "${DEVICE:-cuda}" --dtype "${DTYPE:-bf16}" --reps "${REPS:-5}" --warmup "${WARMUP:-2}")
{
  echo "# argen bench, $(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo cpu)"
  bench --arch var-d16 --batch 1,8,32,64 "${common[@]}"
  bench --arch var-d30 --batch 1,32 "${common[@]}"
  bench --arch var-d16 --decode-only --batch 32 "${common[@]}"
  echo "## ARGEN_CUDA_CONV_FUSE=0 (each decoder conv + its bias pass, no cuDNN fused conv-bias)"
  ARGEN_CUDA_CONV_FUSE=0 bench --arch var-d16 --decode-only --batch 1,32 "${common[@]}"
} | tee "${OUT:-/tmp}/bench_var.md"
