#!/bin/sh
# Class accuracy of the default LlamaGen digits model, per decoding strategy: argen sample (CPU) then the digit
# classifier (score_samples.py). Extra arguments go to argen sample (e.g. --cfg 2 --top-k 0); without them the
# model's metadata defaults apply.
# Usage: scripts/train/llamagen_eval.sh [ARGEN] [N per class] [-- argen sample options]
set -eu
ARGEN=${1:-build-ll/argen}
N=${2:-50}
[ $# -ge 2 ] && shift 2 || shift $#
[ "${1:-}" = "--" ] && shift
for dec in sequential sjd zipar; do
    out=/tmp/ll_eval_$dec
    rm -rf "$out"
    extra=""
    [ $dec = zipar ] && extra="--zipar-window 4"
    start=$(date +%s.%N)
    "$ARGEN" sample --arch llamagen --vq assets/llamagen_digits_vq.safetensors --ckpt assets/llamagen_digits.safetensors \
        --image-size 128 --class 0-9 --n "$N" --seed 0 --decode $dec $extra --stats -q --device cpu --out "$out" "$@" \
        2>&1 | grep -iv '^$' | tail -4
    end=$(date +%s.%N)
    echo "$dec: $(echo "$end $start $N" | awk '{printf "%.3f s/image (%d images, wall incl. load)", ($1-$2)/($3*10), $3*10}')"
    /usr/bin/python3 scripts/train/score_samples.py "$out" | grep ' all'
done
