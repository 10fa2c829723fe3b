#!/usr/bin/env bash
# Kernel-level view of one `argen bench` run on the GPU machine (complements `argen bench --profile`, which times
# ops): nsys's per-kernel summary when nsys is there, else ncu's duration of each of a window of launches.
# Usage: scripts/gpu_kernels.sh NAME SKIP COUNT ARGEN_BENCH_ARGS...   (writes $OUT/kernels_NAME.txt)
#   SKIP/COUNT: the launches ncu measures (warm-up launches skipped); nsys traces the whole run.
set -uo pipefail
name=$1 skip=$2 count=$3; shift 3
argen=${ARGEN:-build-cuda/gpu/bin/argen}
out=${OUT:-/tmp}/kernels_$name.txt
nsys=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
{
  echo "# $argen bench $*"
  if [ -n "$nsys" ]; then
    "$nsys" profile -o "/tmp/k_$name" --force-overwrite true --stats=false "$argen" bench "$@" > /dev/null 2>&1
    "$nsys" stats --report cuda_gpu_kern_sum --format csv "/tmp/k_$name.nsys-rep" 2>/dev/null | head -60
  elif [ -n "$ncu" ]; then
    "$ncu" --launch-skip "$skip" --launch-count "$count" --metrics gpu__time_duration.sum --print-units base --csv \
      "$argen" bench "$@" 2>/dev/null | awk -F'","' 'NR>1 {gsub(/"/, "", $NF); k=$5; sub(/\(.*/, "", k);
        t[k] += $NF; n[k]++} END {for (k in t) printf "%10.1f us %5d  %s\n", t[k] / 1000, n[k], k}' | sort -rn
  else
    echo "neither nsys nor ncu found"
  fi
} > "$out" 2>&1
cat "$out"
