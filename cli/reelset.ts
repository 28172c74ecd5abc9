/**
 * reelset command-line client (`npx reelset --help`).
 *
 *   reelset migrate                          apply database migrations, create the bucket
 *   reelset ingest [catalog.json|folder]     load videos into the catalog (S3 + Postgres)
 *   reelset new-category <label> [--input J] start (or attach to) a new-category run, print its summary
 *   reelset progress <workflow-id>           where a run is (the progress query)
 *   reelset models list|show|evaluate|promote|rollback   the model registry
 *   reelset evalset candidates|grow|show     a label's fixed evaluation set
 *
 * Every command that prints results takes `--json`. Exit codes: 0 success, 1 the
 * operation failed, 2 bad usage (nothing started), 3 a service is unreachable
 * (`cli/common.ts`). Configuration comes from the environment (README, `infra/defaults.env`).
 */
import { Command, CommanderError } from 'commander';
import { EXIT, reportError } from './common';
import { registerCatalogCommands } from './commands/catalog';
import { registerModelCommands } from './commands/models';
import { registerRunCommands } from './commands/runs';

/** The program with every command registered (exported for tests). */
export function buildProgram(): Command {
  const program = new Command()
    .name('reelset')
    .description('videos -> labelled, deduplicated image datasets and trained classifiers, on Temporal')
    .showHelpAfterError()
    .exitOverride();
  registerCatalogCommands(program);
  registerRunCommands(program);
  registerModelCommands(program);
  return program;
}

/**
 * Run the CLI with `argv` (as `process.argv`) and return its exit code.
 */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; commander already printed the usage error.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return reportError(err, argv.includes('--json'));
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
