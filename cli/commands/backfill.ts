/**
 * `reelset backfill <label>`: start (or attach to) the backfill of a label and watch it
 * with a live progress bar; Ctrl-C detaches and leaves it running.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import type { Client } from '@temporalio/client';
import {
  BackfillInput,
  backfillPageRunId,
  backfillProgressQuery,
  backfillWorkflowId,
  formatIssues,
  SamplingMode,
  type BackfillProgress,
  type BackfillRequest,
  type BackfillResult,
  type IngestSource,
} from '../../contracts';
import { loadConfig, type Config } from '../../lib/config';
import { backfillWorkflow } from '../../workflows/backfill';
import { EXIT, parseJsonOption, poller, printJson, startOrAttach, temporalClient, UsageError, workflowUrl } from '../common';
import { backfillGeneration, catalogClients } from '../generation';

/** Options of `reelset backfill`, as commander parses them. */
export interface BackfillOptions {
  since?: string;
  videos?: string[];
  catalog?: string;
  prefix?: string;
  folder?: string;
  mode?: string;
  concurrency?: string;
  embed: boolean;
  batching: boolean;
  input: string;
  id?: string;
  detach?: boolean;
  json?: boolean;
}

/**
 * The backfill request of a command line: `--input` JSON (other fields), then the
 * selector, `--mode`, `--concurrency`, `--no-embed` and `--no-batching` over it; validated with the
 * workflow's own schema before anything starts.
 *
 * @throws UsageError naming the option or field that is wrong.
 */
export function backfillRequest(label: string, opts: BackfillOptions): { request: BackfillRequest; input: BackfillInput } {
  const extra = parseJsonOption(opts.input, '--input');
  if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new UsageError('--input must be a JSON object, e.g. \'{"pageSize": 50}\'');
  const selectors = (['since', 'videos', 'catalog', 'prefix', 'folder'] as const).filter((k) => opts[k] !== undefined);
  if (selectors.length > 1)
    throw new UsageError(`give at most one of --since, --videos, --catalog, --prefix, --folder (got ${selectors.map((s) => `--${s}`).join(', ')})`);
  let ingest: IngestSource | undefined;
  if (opts.prefix !== undefined) ingest = { kind: 'prefix', uri: opts.prefix };
  if (opts.folder !== undefined) ingest = { kind: 'folder', path: path.resolve(opts.folder) };
  if (opts.catalog !== undefined) ingest = { kind: 'catalog', path: path.resolve(opts.catalog) };
  if (opts.mode !== undefined && !SamplingMode.safeParse(opts.mode).success)
    throw new UsageError(`--mode must be one of ${SamplingMode.options.join(', ')}, got ${JSON.stringify(opts.mode)}`);
  const base = extra as Record<string, unknown>;
  const request: BackfillRequest = {
    ...base,
    label,
    ...(opts.since !== undefined ? { since: opts.since } : {}),
    ...(opts.videos !== undefined ? { videoIds: opts.videos } : {}),
    ...(ingest ? { ingest } : {}),
    ...(opts.mode !== undefined ? { extract: { ...(base['extract'] as object | undefined), mode: opts.mode as SamplingMode } } : {}),
    ...(opts.concurrency !== undefined ? { concurrency: Number(opts.concurrency) } : {}),
    ...(opts.embed === false ? { embed: false } : {}),
    ...(opts.batching === false ? { batching: { ...(base['batching'] as object | undefined), mode: 'off' } } : {}),
  } as BackfillRequest;
  const parsed = BackfillInput.safeParse(request);
  if (!parsed.success) throw new UsageError(`invalid backfill input: ${formatIssues(parsed.error)}`);
  return { request, input: parsed.data };
}

/** A backfill result for people. */
export function formatBackfill(r: BackfillResult, where: { config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE' | 'S3_BUCKET'> }): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    `backfill "${r.label}"  (workflow ${r.workflowId}): done in ${r.durationS.toFixed(1)} s`,
    `  videos   ${n(r.total)} selected: ${n(r.extracted)} extracted, ${n(r.reused)} reused, ${n(r.failed)} failed  (${r.videosPerSecond.toFixed(2)} videos/s)`,
    `  frames   ${n(r.frames)} extracted, ${n(r.framesReused)} reused; embeddings ${n(r.embedded)} computed, ${n(r.embeddingsCached)} cached`,
    `  pages    ${n(r.pages)} of ${r.select.pageSize} videos; ${r.runs} run${r.runs > 1 ? 's' : ''} (continue-as-new), largest history ${n(r.maxHistoryLength)} events`,
  ];
  if (r.ingest) {
    const i = r.ingest;
    lines.push(
      `  ingest   ${i.source}: ${i.listed} listed, ${i.inserted} new, ${i.updated} updated, ${i.unchanged} unchanged (${i.skippedUnchanged} not downloaded), ${i.uploaded} uploaded, ${i.failed} failed`,
    );
    for (const f of i.failures) lines.push(`    failed ${f.id} (${f.file}): ${f.reason}`);
  }
  if (r.select.missingCount || r.select.notOfLabelCount) {
    lines.push(
      `  left out ${r.select.missingCount} not in the catalog (${r.select.missing.join(', ')}), ${r.select.notOfLabelCount} not of the label (${r.select.notOfLabel.join(', ')})`,
    );
  }
  if (r.failures.length) {
    lines.push(
      `  videos that failed (the backfill went on; ${r.failed > r.failures.length ? `first ${r.failures.length}, ` : ''}all in each page's extract manifest):`,
    );
    for (const f of r.failures) lines.push(`    ${f.videoId}: ${f.type}: ${f.message}`);
  }
  lines.push(`where to look:`);
  lines.push(`  Temporal UI: ${workflowUrl(where.config, r.workflowId)}`);
  lines.push(`  pages: s3://${where.config.S3_BUCKET}/runs/${backfillPageRunId(r.workflowId, 0)}/ ... (search, extract, embed manifests)`);
  return lines.join('\n');
}

/** Seconds as `1h 02m`, `3m 05s`, `42s`; `-` when unknown. */
export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/**
 * Watch a backfill until it ends, with a live progress bar on stderr (cli-progress; on
 * a terminal it redraws in place, elsewhere it prints a line every 2 s), fed by the
 * workflow's progress query every 500 ms. The ETA comes from the rate this watcher has
 * seen (videos finished per second since it began watching the extraction). Resolves
 * with the result, or `undefined` when the user pressed Ctrl-C (the backfill goes on).
 */
export async function watchBackfill(client: Client, workflowId: string, opts: { bar: boolean }): Promise<BackfillResult | undefined> {
  const handle = client.workflow.getHandle<typeof backfillWorkflow>(workflowId);
  const bar = opts.bar
    ? new SingleBar({
        format: '{phase} |{bar}| {value}/{totalText} videos | {failed} failed | {frames} frames | {rate} videos/s | {running} running | ETA {eta}',
        hideCursor: true,
        noTTYOutput: true,
        notTTYSchedule: 2000,
        barsize: 30,
      })
    : undefined;
  let started = false;
  let first: { at: number; done: number } | undefined;
  const show = (p: BackfillProgress) => {
    if (!bar) return;
    const now = Date.now();
    if (p.phase === 'extract' && p.total > 0) first ??= { at: now, done: p.done };
    const rate = first && now > first.at ? (p.done - first.done) / ((now - first.at) / 1000) : 0;
    const payload = {
      phase: p.phase.padEnd(7),
      totalText: p.total > 0 || p.phase === 'extract' ? String(p.total) : '?',
      failed: p.failed,
      frames: p.frames + p.framesReused,
      rate: p.videosPerSecond.toFixed(2),
      running: p.running,
      eta: rate > 0 ? formatEta((p.total - p.done) / rate) : '-',
    };
    // An empty bar until the selection is known (cli-progress draws 0 of 0 as full).
    if (!started) {
      bar.start(Math.max(p.total, 1), p.done, payload);
      started = true;
    } else {
      bar.setTotal(Math.max(p.total, 1));
      bar.update(p.done, payload);
    }
  };
  // Ctrl-C: stop waiting (the pending long poll is aborted, so the process exits at once); the workflow goes on.
  const abort = new AbortController();
  let detach: () => void = () => undefined;
  const detached = new Promise<undefined>((resolve) => {
    detach = () => resolve(undefined);
  });
  const onSigint = () => {
    detach();
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  const poll = poller(client, 500, () => handle.query(backfillProgressQuery).then(show));
  try {
    const out = await Promise.race([client.withAbortSignal(abort.signal, () => handle.result()), detached]);
    if (out && bar && started) {
      const done = out.extracted + out.reused + out.failed;
      bar.setTotal(Math.max(out.total, 1));
      bar.update(done, {
        phase: 'done   ',
        totalText: String(out.total),
        failed: out.failed,
        frames: out.frames + out.framesReused,
        rate: out.videosPerSecond.toFixed(2),
        running: 0,
        eta: '0s',
      });
    }
    return out;
  } finally {
    await poll.stop();
    process.removeListener('SIGINT', onSigint);
    bar?.stop();
  }
}

/** Register `reelset backfill`. */
export function registerBackfillCommand(program: Command): void {
  program
    .command('backfill')
    .description('extract (and embed) frames for every catalog video of a label: start or attach to its backfill, show its progress')
    .argument('<label>', 'the label, e.g. bicycle')
    .option('--since <date>', 'only videos ingested since this date (YYYY-MM-DD, UTC) or ISO time')
    .option('--videos <ids...>', 'only these catalog videos (each must carry the label)')
    .option('--catalog <file>', 'ingest this catalog file first (read by the workers), then backfill its videos of the label')
    .option('--prefix <s3uri>', 'ingest every video under s3://bucket/prefix first (labelled <label>), then backfill them')
    .option('--folder <dir>', 'ingest every video of a folder first (read by the workers; labelled <label>), then backfill them')
    .option('--mode <mode>', `frame sampling: ${SamplingMode.options.join(', ')} (default fps)`)
    .option('--concurrency <n>', 'extractions at once (default 4)')
    .option('--no-embed', 'extract only; do not embed the frames')
    .option('--no-batching', 'one extract child workflow per video (default: short videos several to one activity, docs/backfill.md#batches)')
    .option('--input <json>', 'other input fields as JSON, e.g. \'{"pageSize": 50, "extract": {"fps": 2}}\'', '{}')
    .option('--id <workflowId>', 'attach to (or start under) this workflow id instead of the one derived from the request and the catalog')
    .option('--detach', 'start (or find) the backfill and return at once')
    .option('--json', 'print the result as JSON (no progress bar)')
    .action(async (label: string, opts: BackfillOptions) => {
      const config = loadConfig();
      const { request, input } = backfillRequest(label, opts);
      let workflowId = opts.id;
      if (!workflowId) {
        const clients = await catalogClients(config);
        try {
          const { generation } = await backfillGeneration(clients, input);
          request.generation = generation;
          workflowId = backfillWorkflowId({ ...input, generation });
        } finally {
          await clients.close();
        }
      }
      const { client, close } = await temporalClient(config);
      try {
        const { attached } = await startOrAttach(client, backfillWorkflow, { taskQueue: config.REELSET_VIDEO_TASK_QUEUE, workflowId, args: [request] });
        const url = workflowUrl(config, workflowId);
        console.error(`${attached ? 'attached to existing backfill' : 'started backfill'} ${workflowId}\nTemporal UI: ${url}`);
        if (opts.detach) {
          if (opts.json) printJson({ workflowId, attached, url });
          else console.error(`watch: reelset backfill ${label} --id ${workflowId}    stop: reelset cancel ${workflowId}`);
          return;
        }
        const result = await watchBackfill(client, workflowId, { bar: !opts.json });
        if (!result) {
          console.error(
            `\ndetached: the backfill goes on.\n  watch again: reelset backfill ${label} --id ${workflowId}\n  stop it:     reelset cancel ${workflowId}`,
          );
          if (opts.json) printJson({ workflowId, attached, detached: true, url });
          return;
        }
        if (opts.json) printJson(result);
        else console.log(formatBackfill(result, { config }));
        if (result.failed > 0 || (result.ingest?.failed ?? 0) > 0) process.exitCode = EXIT.failed;
      } finally {
        await close();
      }
    });
}
