#!/usr/bin/env bash
# The main job: builds argen if needed and samples class-conditional images.
# Until the embedded default model lands (issue 6), it samples from the var_tiny test checkpoint, a tiny VAR with
# RANDOM weights made by the official code: the images are noise, but every stage of the real pipeline runs.
# Usage: scripts/sample.sh [argen sample options]     e.g. scripts/sample.sh --class 3,7 --n 2 --out samples
# With --vae/--ckpt, your own checkpoints are used instead (e.g. vae_ch160v4096z32.pth and var_d16.pth).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh" >&2
args=("$@")
if [[ " $* " != *" --ckpt "* ]]; then
  fx="$root/build/tests/fixtures"
  [[ -f "$fx/var_tiny/var.pth" ]] || { mkdir -p "$fx"; tar xJf "$root/tests/fixtures/var_tiny.tar.xz" -C "$fx"; }
  args=(--vae "$fx/var_tiny/vae.pth" --ckpt "$fx/var_tiny/var.pth" --patch-nums 1,2,3,4 "${args[@]}")
  echo "sample.sh: using the var_tiny test checkpoint (random weights: expect noise images)" >&2
fi
[[ " $* " == *" --out "* || " $* " == *" -o "* ]] || args+=(--out samples)
[[ " $* " == *" --class "* || " $* " == *" -c "* ]] || args+=(--class 3,7)
exec "$root/build/argen" sample "${args[@]}"
