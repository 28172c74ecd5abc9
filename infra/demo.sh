#!/usr/bin/env bash
# The README's first command: install what is missing, start every service and both
# workers, load the sample catalog, and run the new-category workflow for one label on
# real video, printing its summary. Idempotent: a second run reuses everything and
# attaches to (or re-reads) the finished run.
# Usage: bash infra/demo.sh [label] [input-json]     (default label: person)
# The demo labels with weak labels so that it finishes unattended; to see the human
# path, pass '{"labeling": {"mode": "human"}}': it prints the Label Studio project and
# waits for people (docs/labelling.md).
set -euo pipefail
# shellcheck source=infra/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REELSET_ROOT"
label=${1:-person}
input=${2:-'{"labeling": {"mode": "weak"}}'}
export NODE_NO_WARNINGS=1

bash infra/install.sh
bash infra/services.sh start
node node_modules/tsx/dist/cli.mjs infra/migrate.ts
bash infra/workers.sh start

# The sample catalog: ../shared/data when present, else the small videos carried in samples/.
catalog="$REELSET_ROOT/../shared/data/catalog.json"
[ -f "$catalog" ] || catalog="$REELSET_ROOT/samples/catalog.json"
node cli/bin.js ingest "$catalog"

node cli/bin.js new-category "$label" --input "$input"
echo
echo "services: bash infra/services.sh status | workers: bash infra/workers.sh status | logs: $REELSET_LOG_DIR"
