# Sourced by infra/install.sh and infra/install-gpu.sh (needs their `log` and `die`).
#
# build_tfjs_addon PKG TF LOG WHAT
#   Build the N-API addon of the tfjs-node(-gpu) package at PKG against the TensorFlow C
#   library of a PyPI wheel at TF (its libtensorflow_cc.so.2, libtensorflow_framework.so.2
#   and include/), with node-pre-gyp from source: the package's deps/ is rebuilt with links
#   to the wheel's files (hard links, copies across file systems), and the build's output
#   goes to LOG. WHAT names the package in messages. Dies when the build fails.
build_tfjs_addon() {
  local pkg=$1 tf=$2 logfile=$3 what=$4 lib
  rm -rf "$pkg/deps" "$pkg/lib" "$pkg/build"
  mkdir -p "$pkg/deps/lib"
  ln -s "$tf/include" "$pkg/deps/include"
  for lib in libtensorflow_cc.so.2 libtensorflow_framework.so.2; do
    ln "$tf/$lib" "$pkg/deps/lib/$lib" 2>/dev/null || cp "$tf/$lib" "$pkg/deps/lib/$lib"
  done
  ln -s libtensorflow_cc.so.2 "$pkg/deps/lib/libtensorflow.so"
  ln -s libtensorflow_framework.so.2 "$pkg/deps/lib/libtensorflow_framework.so"
  log "building the $what addon against $tf (node-pre-gyp --build-from-source)"
  # Node's headers: those of the node that runs (its prefix's include/: the registry build, or Debian's /usr).
  (cd "$pkg" && npm_config_nodedir="${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}" npm run --silent build-addon-from-source >"$logfile" 2>&1) ||
    die "$what addon build failed (log: $logfile)"
}
