/** `reelset runs report <id>`: build a run's HTML report, store it in S3 and open it locally. */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { buildRunReport } from '../../activities/reports';
import { keySegment } from '../../contracts';
import { loadConfig } from '../../lib/config';
import { printJson, withDataClients } from '../common';

/**
 * Open a file in the user's browser: `$BROWSER`, else `open` (macOS), `xdg-open` (Linux
 * with a desktop). Returns false when there is nothing to open it with (a server without
 * a display); never throws.
 */
export async function openInBrowser(file: string): Promise<boolean> {
  const candidates = process.env['BROWSER']
    ? [process.env['BROWSER']]
    : process.platform === 'darwin'
      ? ['open']
      : process.platform === 'win32'
        ? ['explorer.exe']
        : process.env['DISPLAY'] || process.env['WAYLAND_DISPLAY']
          ? ['xdg-open']
          : [];
  for (const cmd of candidates) {
    const ok = await new Promise<boolean>((resolve) => {
      const child = spawn(cmd, [file], { detached: true, stdio: 'ignore' });
      child.once('error', () => resolve(false));
      child.once('spawn', () => {
        child.unref();
        resolve(true);
      });
    });
    if (ok) return true;
  }
  return false;
}

/** Register `runs report` on the `runs` command. */
export function registerRunsReport(runs: Command): void {
  runs
    .command('report')
    .description(
      'build the run report (steps, timings, counts, contact sheets, training curves, confusion matrices, failures), store it at s3://<bucket>/runs/<id>/report.html and open a local copy',
    )
    .argument('<workflowId>')
    .option('--out <file>', 'local copy (default: <REELSET_DATA_DIR>/reports/<id>.html)')
    .option('--no-open', 'do not open the local copy in a browser')
    .option('--json', 'print where the report is as JSON')
    .action(async (workflowId: string, opts: { out?: string; open: boolean; json?: boolean }) => {
      const config = loadConfig();
      await withDataClients(config, { max: 2 }, async ({ pool, store }) => {
        const { html, ...summary } = await buildRunReport({ pool, store, config }, workflowId);
        const out = path.resolve(opts.out ?? path.join(config.REELSET_DATA_DIR, 'reports', `${keySegment(workflowId)}.html`));
        await fs.mkdir(path.dirname(out), { recursive: true });
        await fs.writeFile(out, html);
        const opened = opts.open ? await openInBrowser(out) : false;
        if (opts.json) printJson({ ...summary, s3: store.uri(summary.reportKey), file: out, opened });
        else {
          console.log(
            `report: ${store.uri(summary.reportKey)} (${(summary.bytes / 1024).toFixed(0)} KB, ${summary.steps} steps, ${summary.charts} charts, ${summary.contactSheets} contact sheets)`,
          );
          console.log(`local copy: ${out}${opened ? ' (opened)' : opts.open ? ' (no browser to open it here: open the file)' : ''}`);
        }
      });
    });
}
