#!/usr/bin/env bash
# Configures and builds argen into build/ (CUDA when nvcc is found). Extra arguments go to cmake's configure step.
# Usage: scripts/build.sh [-DARGEN_CUDA=OFF ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
