# shellcheck shell=bash
# Shared environment for reelset's local services. Source it:
#   source infra/env.sh
# Defaults come from infra/defaults.env (the one place for them; lib/config.ts reads the
# same file): a variable already set in the environment wins (an empty one counts as
# unset, except S3_ENDPOINT, where empty means AWS S3). Safe to source more than once
# (PATH entries are not duplicated).

# Repo root = parent of the directory holding this file (works from any cwd).
_reelset_env_src="${BASH_SOURCE[0]:-$0}"
REELSET_ROOT="${REELSET_ROOT:-$(cd "$(dirname "$_reelset_env_src")/.." && pwd)}"
unset _reelset_env_src
export REELSET_ROOT

# A relative REELSET_DATA_DIR given by the caller is taken from $PWD.
if [ -n "${REELSET_DATA_DIR:-}" ]; then
  case "$REELSET_DATA_DIR" in /*) ;; *) REELSET_DATA_DIR="$PWD/$REELSET_DATA_DIR" ;; esac
fi

while IFS= read -r _reelset_line || [ -n "$_reelset_line" ]; do
  case "$_reelset_line" in [A-Z]*=*) ;; *) continue ;; esac
  _reelset_key=${_reelset_line%%=*}
  if [ -n "${!_reelset_key:-}" ] || { [ "$_reelset_key" = S3_ENDPOINT ] && [ -n "${S3_ENDPOINT+x}" ]; }; then
    export "${_reelset_key?}"
    continue
  fi
  # Values are plain text with ${NAME} references only (see the file's header).
  eval "$_reelset_key=\"${_reelset_line#*=}\""
  # An empty default stays unset: tools read a set-but-empty variable as set (the Temporal
  # CLI turns TLS on for an empty TEMPORAL_TLS_CLIENT_CERT_PATH). S3_ENDPOINT is the exception.
  if [ -n "${!_reelset_key}" ] || [ "$_reelset_key" = S3_ENDPOINT ]; then export "${_reelset_key?}"; else unset "$_reelset_key"; fi
done < "$REELSET_ROOT/infra/defaults.env"
unset _reelset_line _reelset_key

# Tools installed by infra/install.sh come first on PATH; Node.js 22 (when the machine's
# node is older) before them all, even before it exists (install.sh creates it).
for _reelset_p in "$REELSET_TOOLS_DIR/venv/bin" "$REELSET_TOOLS_DIR/bin" "$REELSET_TOOLS_DIR/node/bin"; do
  case ":$PATH:" in *":$_reelset_p:"*) ;; *) PATH="$_reelset_p:$PATH" ;; esac
done
unset _reelset_p
export PATH
