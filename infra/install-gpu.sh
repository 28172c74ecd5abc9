#!/usr/bin/env bash
# GPU worker setup, after infra/install.sh, on a Linux x86-64 machine with an NVIDIA GPU
# and its driver (CUDA 12 and 13 user-space libraries come from PyPI wheels; the driver
# must support CUDA 13 for the ONNX Runtime provider). Idempotent.
#
# NOT RUN ON A GPU YET: written and shell-checked on CPU-only machines; `bash
# infra/gpu-check.sh` is the check a GPU machine runs (see docs/training.md#gpu-workers-not-run-on-a-gpu-here).
#
#   1. $REELSET_TOOLS_DIR/tf-gpu-venv: PyPI `tensorflow[and-cuda]` (the GPU build of the
#      same TensorFlow as the CPU path, with the nvidia-* CUDA 12 / cuDNN wheels it pins).
#   2. @tensorflow/tfjs-node-gpu in $REELSET_TFJS_NODE_DIR/gpu, built like tfjs-node
#      (install.sh) against that wheel's TensorFlow C library.
#   3. ONNX Runtime's CUDA execution provider: PyPI `onnxruntime-gpu[cuda,cudnn]` of
#      onnxruntime-node's exact version (its nvidia-* CUDA 13 wheels) in
#      $REELSET_TOOLS_DIR/ort-gpu-venv; its provider libraries are copied into
#      onnxruntime-node's binary folder (a later `npm ci` removes them: rerun this script).
#   4. $REELSET_TOOLS_DIR/gpu.env: LD_LIBRARY_PATH with the nvidia-* library folders;
#      infra/workers.sh sources it for the GPU worker, and so should any other launcher.
# Writes only under $REELSET_DATA_DIR and the checkout's node_modules.
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

TENSORFLOW_GPU_VERSION=2.15.1
TFJS_NODE_VERSION=4.22.0

log() { printf '[install-gpu] %s\n' "$*"; }
die() { printf '[install-gpu] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=infra/tfjs-addon.sh
source "$(dirname "${BASH_SOURCE[0]}")/tfjs-addon.sh"

[ "$(uname -s)/$(uname -m)" = Linux/x86_64 ] || die "Linux x86-64 only"
command -v nvidia-smi >/dev/null 2>&1 || log "warning: nvidia-smi not found; is the NVIDIA driver installed?"
ORT_VERSION=$(node -p "require('$REELSET_ROOT/node_modules/onnxruntime-node/package.json').version") ||
  die "onnxruntime-node is not installed: run infra/install.sh first"
pip_in() { PIP_CACHE_DIR="$REELSET_TOOLS_DIR/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 "$1/bin/python" -m pip install -q "${@:2}"; }

# ---------------------------------------------------------------- 1. TF GPU ---
TVENV="$REELSET_TOOLS_DIR/tf-gpu-venv"
if [ "$(cat "$TVENV/.reelset-pins" 2>/dev/null)" != "tensorflow[and-cuda]==$TENSORFLOW_GPU_VERSION" ]; then
  [ -x "$TVENV/bin/python" ] || python3 -m venv "$TVENV"
  log "pip install tensorflow[and-cuda]==$TENSORFLOW_GPU_VERSION (several GB with the CUDA wheels)"
  pip_in "$TVENV" "tensorflow[and-cuda]==$TENSORFLOW_GPU_VERSION"
  echo "tensorflow[and-cuda]==$TENSORFLOW_GPU_VERSION" > "$TVENV/.reelset-pins"
fi
TF=$(ls -d "$TVENV"/lib/python3*/site-packages/tensorflow | head -n1)
[ -f "$TF/libtensorflow_cc.so.2" ] || die "no libtensorflow_cc.so.2 in $TF"

# ------------------------------------------------------- 3. ORT CUDA provider ---
OVENV="$REELSET_TOOLS_DIR/ort-gpu-venv"
if [ "$(cat "$OVENV/.reelset-pins" 2>/dev/null)" != "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION" ]; then
  [ -x "$OVENV/bin/python" ] || python3 -m venv "$OVENV"
  log "pip install onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION (the provider of onnxruntime-node's version, CUDA 13 wheels)"
  pip_in "$OVENV" "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION"
  echo "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION" > "$OVENV/.reelset-pins"
fi
OCAPI=$(ls -d "$OVENV"/lib/python3*/site-packages/onnxruntime/capi | head -n1)
BIN="$REELSET_ROOT/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
for lib in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
  [ -f "$OCAPI/$lib" ] || die "$lib not in $OCAPI"
  cmp -s "$OCAPI/$lib" "$BIN/$lib" 2>/dev/null || cp "$OCAPI/$lib" "$BIN/$lib"
done
log "ONNX Runtime CUDA provider: $BIN (from onnxruntime-gpu $ORT_VERSION)"

# ------------------------------------------------------------- 4. gpu.env ---
libdirs=$(ls -d "$TVENV"/lib/python3*/site-packages/nvidia/*/lib "$OVENV"/lib/python3*/site-packages/nvidia/*/lib "$OVENV"/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | sort -u | paste -sd: -)
cat > "$REELSET_TOOLS_DIR/gpu.env" <<EOF
# Written by infra/install-gpu.sh: CUDA libraries from PyPI wheels for the GPU worker.
export LD_LIBRARY_PATH="$libdirs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
log "wrote $REELSET_TOOLS_DIR/gpu.env"

# ----------------------------------------------------- 2. tfjs-node-gpu ---
GDIR="$REELSET_TFJS_NODE_DIR/gpu"
PKG="$GDIR/node_modules/@tensorflow/tfjs-node-gpu"
want="tfjs-node-gpu $TFJS_NODE_VERSION tensorflow $TENSORFLOW_GPU_VERSION node $(node -p 'process.versions.modules')"
if [ "$(cat "$GDIR/.reelset-build" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$GDIR"
  [ -f "$GDIR/package.json" ] || echo '{"name":"reelset-tfjs-node-gpu","private":true}' > "$GDIR/package.json"
  log "npm install --ignore-scripts @tensorflow/tfjs-node-gpu@$TFJS_NODE_VERSION in $GDIR"
  (cd "$GDIR" && npm install --ignore-scripts --no-audit --no-fund "@tensorflow/tfjs-node-gpu@$TFJS_NODE_VERSION" >/dev/null)
  build_tfjs_addon "$PKG" "$TF" "$REELSET_LOG_DIR/tfjs-node-gpu-build.log" "tfjs-node-gpu (TensorFlow $TENSORFLOW_GPU_VERSION, GPU build)"
  echo "$want" > "$GDIR/.reelset-build"
fi
# shellcheck disable=SC1091
source "$REELSET_TOOLS_DIR/gpu.env"
(cd "$GDIR" && TF_CPP_MIN_LOG_LEVEL=2 node -e "
  const tf = require('@tensorflow/tfjs-node-gpu');
  console.log('[install-gpu] tfjs-node-gpu loads: backend', tf.getBackend(), 'TensorFlow', tf.backend().binding.TF_Version);") ||
  die "tfjs-node-gpu does not load (LD_LIBRARY_PATH from $REELSET_TOOLS_DIR/gpu.env)"
log "done: now run bash infra/gpu-check.sh"
