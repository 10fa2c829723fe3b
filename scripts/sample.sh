#!/usr/bin/env bash
# The main job: builds argen if needed and samples class-conditional images. With no --vae/--vq/--ckpt, argen uses
# its embedded default models (handwritten digits 0-9, 128x128; assets/*.md): --arch var (default) or llamagen.
# Usage: scripts/sample.sh [argen sample options]     e.g. scripts/sample.sh --class 3,7 --n 2 --out samples
# With --vae/--ckpt, your own checkpoints are used instead (e.g. vae_ch160v4096z32.pth and var_d16.pth).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh" >&2
args=("$@")
[[ " $* " == *" --out "* || " $* " == *" -o "* ]] || args+=(--out samples)
[[ " $* " == *" --class "* || " $* " == *" -c "* ]] || args+=(--class 7)
exec "$root/build/argen" sample "${args[@]}"
