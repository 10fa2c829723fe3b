#!/usr/bin/env bash
# Installs the Debian packages argen builds and tests with, when any is missing (apt-get; sudo when not root).
# Usage: scripts/deps.sh [--fuzz]     (--fuzz adds clang for the libFuzzer harnesses)
set -euo pipefail
pkgs=(cmake make gcc pkg-config xz-utils libopenblas-dev liblapacke-dev libpng-dev libjpeg-dev zlib1g-dev libcriterion-dev libstb-dev)
[[ "${1:-}" == "--fuzz" ]] && pkgs+=(clang)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
