/**
 * reelset command-line client (`npx reelset --help`).
 *
 *   reelset migrate                          apply database migrations, create the bucket
 *   reelset ingest [catalog.json|folder]     load videos into the catalog (S3 + Postgres)
 *   reelset new-category <label> [--input J] start (or attach to) a new-category run, print its summary
 *   reelset progress <workflow-id>           where a run is (the progress query)
 *   reelset backfill <label> [--since D | --videos ids... | --catalog f | --prefix s3://.. | --folder d]
 *                                            start (or attach to) a label's backfill, live progress bar
 *   reelset cancel <workflow-id>             cancel a run cleanly and wait until it stopped
 *   reelset models list|show|evaluate|promote|rollback   the model registry
 *   reelset evalset candidates|grow|show     a label's fixed evaluation set
 *   reelset predict <path> --model l@v       classify a video, image or folder (per frame + the video)
 *   reelset predict-batch <l@v> [--videos]   the batch predict workflow (model labels)
 *   reelset labeling status <workflow-id>    where people label a run, tasks done, agreement, deadline
 *   reelset labeling finish <workflow-id>    stop waiting for people (weak labels for the rest)
 *   reelset runs list|show|report            watch runs (Temporal visibility, steps, HTML report)
 *   reelset schedule apply|show|trigger|...  the nightly retraining schedules (infra/schedules.json)
 *   reelset frames <video> --out <dir>       extract a local file's frames, no services (probe, frames, warnings)
 *
 * Every command that prints results takes `--json`. Exit codes: 0 success, 1 the
 * operation failed, 2 bad usage (nothing started), 3 a service is unreachable
 * (`cli/common.ts`). Configuration comes from the environment (docs/operations.md#configuration, `infra/defaults.env`).
 */
import { Command, CommanderError } from 'commander';
import { EXIT, reportError } from './common';
import { registerBackfillCommand } from './commands/backfill';
import { registerCancelCommand } from './commands/cancel';
import { registerCatalogCommands } from './commands/catalog';
import { registerModelCommands } from './commands/models';
import { registerPredictCommands } from './commands/predict';
import { registerLabelingCommands } from './commands/labeling';
import { registerFramesCommands } from './commands/frames';
import { registerRunCommands } from './commands/runs';
import { registerRunsList } from './commands/runs-list';
import { registerRunsReport } from './commands/runs-report';
import { registerRunsShow } from './commands/runs-show';
import { registerScheduleCommands } from './commands/schedule';

/** The program with every command registered (exported for tests). */
export function buildProgram(): Command {
  const program = new Command()
    .name('reelset')
    .description('videos -> labelled, deduplicated image datasets and trained classifiers, on Temporal')
    .showHelpAfterError()
    .exitOverride();
  registerCatalogCommands(program);
  registerRunCommands(program);
  registerBackfillCommand(program);
  registerCancelCommand(program);
  registerModelCommands(program);
  registerPredictCommands(program);
  registerLabelingCommands(program);
  const runs = program.command('runs').description('watch runs: list them, show one, write its HTML report');
  registerRunsList(runs);
  registerRunsShow(runs);
  registerRunsReport(runs);
  registerScheduleCommands(program);
  registerFramesCommands(program);
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
