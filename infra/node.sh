#!/usr/bin/env bash
# Run node with reelset's environment (infra/env.sh): Node.js 22 from infra/install.sh
# when the machine's node is older, and every default. package.json's scripts that run
# node go through it, so `npm run reelset` and friends run on Node 22 whatever node runs npm.
#   bash infra/node.sh <script> [args...]
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec node "$@"
