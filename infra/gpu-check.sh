#!/usr/bin/env bash
# The GPU worker check (after infra/install-gpu.sh): tfjs-node-gpu places training on a
# GPU and how much faster than the CPU it is; ONNX Runtime's CUDA provider starts and how
# fast the backbones run on it. Prints a table; exits 1 when the GPU is not used.
# NOT RUN ON A GPU YET (see docs/training.md#gpu-workers-not-run-on-a-gpu-here).
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REELSET_ROOT"
[ -f "$REELSET_TOOLS_DIR/gpu.env" ] || { echo "[gpu-check] $REELSET_TOOLS_DIR/gpu.env not found: run bash infra/install-gpu.sh first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$REELSET_TOOLS_DIR/gpu.env"
NODE_NO_WARNINGS=1 exec node node_modules/tsx/dist/cli.mjs bench/gpu-check.ts "$@"
