/**
 * reelset command-line client.
 *
 *   reelset migrate                          apply database migrations, create the bucket
 *   reelset ingest [catalog.json|folder]     load videos into the catalog (S3 + Postgres)
 *   reelset new-category <label> [--input J] start (or attach to) a new-category run, print its summary
 *   reelset progress <workflow-id>           where a run is (the progress query)
 *
 * Configuration comes from the environment (see README); `infra/env.sh` sets the local defaults.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { Command } from 'commander';
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { loadConfig } from '../activities/common/config';
import { createLogger } from '../activities/common/logger';
import { catalogFromFolder, readCatalogFile, readTaxonomyFile } from '../activities/catalog/catalog-file';
import { ingestCatalog, upsertTaxonomy } from '../activities/catalog/ingest';
import { createPool } from '../activities/storage/db';
import { ObjectStore } from '../activities/storage/s3';
import { NewCategoryInput, type NewCategoryRequest } from '../workflows/input';
import type { NewCategoryResult, Progress } from '../workflows/new-category';
import { formatSummary } from './summary';

const ROOT = path.resolve(__dirname, '..');

/** Deterministic workflow id of a new-category run: the label plus a hash of the full (defaulted) input. */
export function newCategoryWorkflowId(input: NewCategoryInput): string {
  const hash = createHash('sha256').update(JSON.stringify(input)).digest('hex').slice(0, 10);
  return `new-category-${input.label.replace(/[^a-z0-9-]+/g, '-')}-${hash}`;
}

async function temporalClient() {
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  return { config, connection, client: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }) };
}

const program = new Command().name('reelset').description('videos -> labelled datasets and trained classifiers, on Temporal');

program
  .command('migrate')
  .description('apply database migrations and create the S3 bucket')
  .action(async () => {
    const { execFileSync } = await import('node:child_process');
    execFileSync(process.execPath, [require.resolve('tsx/cli'), path.join(ROOT, 'infra/migrate.ts')], { stdio: 'inherit' });
  });

program
  .command('ingest')
  .description('load a catalog file (catalog.json format) or a folder of videos into the catalog')
  .argument('[source]', 'catalog JSON file or folder of videos', path.join(ROOT, '../shared/data/catalog.json'))
  .option('--label <label...>', 'labels for every video of a folder')
  .option('--taxonomy <file>', 'label taxonomy (name, parent, synonyms)', path.join(ROOT, 'infra/taxonomy.json'))
  .action(async (source: string, opts: { label?: string[]; taxonomy: string }) => {
    const config = loadConfig();
    const logger = createLogger(config.REELSET_LOG_LEVEL, 'cli');
    const pool = createPool(config);
    const store = ObjectStore.fromConfig(config);
    try {
      await store.ensureBucket();
      const labels = await upsertTaxonomy(pool, await readTaxonomyFile(opts.taxonomy));
      const stat = await fs.stat(source);
      const entries = stat.isDirectory() ? await catalogFromFolder(source, opts.label ?? []) : await readCatalogFile(source);
      const report = await ingestCatalog({ pool, store, logger, ffprobePath: config.FFPROBE_PATH }, entries);
      console.log(
        `ingest ${source}: ${entries.length} entries, ${report.inserted.length} new, ${report.updated.length} updated, ` +
          `${report.unchanged.length} unchanged, ${report.uploaded} uploaded, ${report.failed.length} failed; taxonomy ${labels} labels`,
      );
      for (const f of report.failed) console.error(`  failed ${f.id} (${f.file}): ${f.reason}`);
      if (report.failed.length) process.exitCode = 1;
    } finally {
      await pool.end();
      store.destroy();
    }
  });

program
  .command('new-category')
  .description('start (or attach to) a new-category run and print its summary when it ends')
  .argument('<label>', 'the label, e.g. bicycle')
  .option('--input <json>', 'other input fields as JSON, e.g. \'{"maxNegativeVideos": 4}\'', '{}')
  .option('--id <workflowId>', 'workflow id (default: derived from the label and input)')
  .option('--no-wait', 'start and return without waiting for the result')
  .option('--json', 'print the result as JSON')
  .action(async (label: string, opts: { input: string; id?: string; wait: boolean; json?: boolean }) => {
    // The training queue defaults to this machine's REELSET_GPU_TASK_QUEUE.
    const gpuTaskQueue = loadConfig().REELSET_GPU_TASK_QUEUE;
    const request = { gpuTaskQueue, ...(JSON.parse(opts.input) as object), label } as NewCategoryRequest;
    const parsed = NewCategoryInput.safeParse(request);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      console.error(`invalid input: field "${i.path.join('.')}": ${i.message}`);
      process.exit(2);
    }
    const { config, connection, client } = await temporalClient();
    const workflowId = opts.id ?? newCategoryWorkflowId(parsed.data);
    try {
      let handle;
      try {
        handle = await client.workflow.start('newCategoryWorkflow', {
          taskQueue: config.REELSET_VIDEO_TASK_QUEUE,
          workflowId,
          args: [request],
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
        console.error(`started ${workflowId}`);
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        handle = client.workflow.getHandle(workflowId);
        console.error(`attached to existing run ${workflowId}`);
      }
      console.error(`Temporal UI: ${config.TEMPORAL_UI_URL}/namespaces/${config.TEMPORAL_NAMESPACE}/workflows/${encodeURIComponent(workflowId)}`);
      if (!opts.wait) return;
      let last = '';
      const timer = setInterval(() => {
        handle
          .query<Progress>('progress')
          .then((p) => {
            const line = `  ${p.stage} (done: ${p.stepsDone.join(', ') || '-'}; videos ${p.videos.extracted + p.videos.failed}/${p.videos.total}, ${p.videos.failed} failed)`;
            if (line !== last) console.error(line);
            last = line;
          })
          .catch(() => undefined);
      }, 2000);
      try {
        const result = (await handle.result()) as NewCategoryResult;
        if (opts.json) console.log(JSON.stringify(result, null, 2));
        else console.log(formatSummary(result, { temporalUi: config.TEMPORAL_UI_URL, namespace: config.TEMPORAL_NAMESPACE, bucket: config.S3_BUCKET }));
      } finally {
        clearInterval(timer);
      }
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        let cause: unknown = err.cause;
        let msg = err.message;
        while (cause instanceof Error) {
          msg = cause.message;
          cause = (cause as { cause?: unknown }).cause;
        }
        console.error(`run ${workflowId} failed: ${msg}`);
        process.exitCode = 1;
      } else throw err;
    } finally {
      await connection.close();
    }
  });

program
  .command('progress')
  .description('where a run is: stage, steps done, videos extracted')
  .argument('<workflowId>')
  .action(async (workflowId: string) => {
    const { connection, client } = await temporalClient();
    try {
      console.log(JSON.stringify(await client.workflow.getHandle(workflowId).query<Progress>('progress'), null, 2));
    } finally {
      await connection.close();
    }
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
