/** `reelset migrate` and `reelset ingest`: the catalog's database and videos. */
import type { Command } from 'commander';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { catalogFromFolder, ingestCatalog, readCatalogFile, readTaxonomyFile, upsertTaxonomy } from '../../activities/catalog';
import { loadConfig, REELSET_ROOT } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import { migrate } from '../../lib/migrate';
import { EXIT, printJson, UsageError, withDataClients } from '../common';

/** The default catalog: `../shared/data/catalog.json` when present, else the videos carried in `samples/`. */
export function defaultCatalog(): string {
  const shared = path.join(REELSET_ROOT, '../shared/data/catalog.json');
  return require('node:fs').existsSync(shared) ? shared : path.join(REELSET_ROOT, 'samples/catalog.json');
}

/** Register the catalog commands. */
export function registerCatalogCommands(program: Command): void {
  program
    .command('migrate')
    .description('apply database migrations and create the S3 bucket')
    .option('--json', 'print what was applied as JSON')
    .action(async (opts: { json?: boolean }) => {
      const report = await migrate(loadConfig());
      if (opts.json) printJson(report);
      else {
        console.log(`migrations: ${report.applied.length ? `up ${report.applied.join(', ')}` : 'none to apply'}`);
        console.log(`bucket: ${report.bucket}`);
      }
    });

  program
    .command('ingest')
    .description('load a catalog file (catalog.json format) or a folder of videos into the catalog (S3 + Postgres)')
    .argument('[source]', 'catalog JSON file or folder of videos (default: ../shared/data/catalog.json, else samples/catalog.json)')
    .option('--label <label...>', 'labels for every video of a folder')
    .option('--taxonomy <file>', 'label taxonomy (name, parent, synonyms)', path.join(REELSET_ROOT, 'infra/taxonomy.json'))
    .option('--json', 'print the ingest report as JSON')
    .action(async (source: string | undefined, opts: { label?: string[]; taxonomy: string; json?: boolean }) => {
      const from = source ?? defaultCatalog();
      const stat = await fs.stat(from).catch(() => undefined);
      if (!stat) throw new UsageError(`${from}: no such file or folder`);
      const config = loadConfig();
      const logger = createLogger(opts.json ? 'warn' : config.REELSET_LOG_LEVEL, 'cli');
      await withDataClients(config, {}, async ({ pool, store }) => {
        await store.ensureBucket();
        const labels = await upsertTaxonomy(pool, await readTaxonomyFile(opts.taxonomy));
        const entries = stat.isDirectory() ? await catalogFromFolder(from, opts.label ?? []) : await readCatalogFile(from);
        const report = await ingestCatalog({ pool, store, logger, ffprobePath: config.FFPROBE_PATH }, entries);
        if (opts.json) printJson({ source: from, entries: entries.length, taxonomyLabels: labels, ...report });
        else {
          console.log(
            `ingest ${from}: ${entries.length} entries, ${report.inserted.length} new, ${report.updated.length} updated, ` +
              `${report.unchanged.length} unchanged, ${report.uploaded} uploaded, ${report.failed.length} failed; taxonomy ${labels} labels`,
          );
          for (const f of report.failed) console.error(`  failed ${f.id} (${f.file}): ${f.reason}`);
        }
        if (report.failed.length) process.exitCode = EXIT.failed;
      });
    });
}
