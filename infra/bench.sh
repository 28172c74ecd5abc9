#!/usr/bin/env bash
# Run a benchmark from bench/ against the real services:
#   bash infra/bench.sh extract [args...]   (npm run bench:extract -- [args...])
# Installs what is missing, starts the services and applies migrations first.
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REELSET_ROOT"
export NODE_NO_WARNINGS=1
name="${1:?usage: infra/bench.sh <benchmark name in bench/> [args...]}"
shift
bash infra/install.sh >/dev/null
bash infra/services.sh start >/dev/null
node node_modules/tsx/dist/cli.mjs infra/migrate.ts >/dev/null
exec node node_modules/tsx/dist/cli.mjs "bench/$name.ts" "$@"
