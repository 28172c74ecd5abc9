/**
 * `reelset cancel <run>`: cancel a running workflow (a backfill, a new-category run)
 * cleanly and wait until it has stopped.
 */
import type { Command } from 'commander';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { loadConfig, type Config } from '../../lib/config';
import { repos } from '../../lib/repositories';
import { EXIT, printJson, temporalClient, UsageError, withDataClients, workflowUrl } from '../common';

/** What `reelset cancel` found and did. */
export interface CancelReport {
  workflowId: string;
  /** Workflow status before the request (`RUNNING`, `COMPLETED`, ...). */
  before: string;
  /** Workflow status at the end (`CANCELLED` once it has stopped; `RUNNING` with --no-wait or on timeout). */
  after: string;
  requested: boolean;
  /** The run's record in Postgres (`runs.status`), when it has one and Postgres answers. */
  record?: string;
  /** Milliseconds from the request to the closed workflow. */
  waitedMs?: number;
}

async function recordStatus(config: Config, workflowId: string): Promise<string | undefined> {
  try {
    return await withDataClients(config, { max: 1, check: false }, async ({ pool }) => (await repos.runs.get(pool, workflowId))?.status);
  } catch {
    return undefined;
  }
}

/**
 * Request cancellation of a workflow and wait (polling its status every 250 ms, at most
 * `timeoutS`) until it has closed. The workflow decides what cancelling means: a backfill
 * or new-category run cancels its extract children (ffmpeg is killed, temporary files
 * removed), waits for them and records `cancelled` in Postgres before it closes.
 *
 * @throws UsageError when no workflow has this id.
 */
export async function cancelRun(
  client: Client,
  config: Config,
  workflowId: string,
  opts: { wait: boolean; timeoutS: number; reason?: string },
): Promise<CancelReport> {
  const handle = client.workflow.getHandle(workflowId);
  let before: string;
  try {
    before = (await handle.describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new UsageError(`no workflow with id ${JSON.stringify(workflowId)} in namespace ${config.TEMPORAL_NAMESPACE}`);
    throw err;
  }
  if (before !== 'RUNNING') return { workflowId, before, after: before, requested: false, record: await recordStatus(config, workflowId) };
  const sent = Date.now();
  await handle.cancel();
  let after = before;
  if (opts.wait) {
    while (Date.now() - sent < opts.timeoutS * 1000) {
      after = (await handle.describe()).status.name;
      if (after !== 'RUNNING') break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    workflowId,
    before,
    after,
    requested: true,
    record: await recordStatus(config, workflowId),
    ...(after !== 'RUNNING' ? { waitedMs: Date.now() - sent } : {}),
  };
}

/** Register `reelset cancel`. */
export function registerCancelCommand(program: Command): void {
  program
    .command('cancel')
    .description(
      'cancel a running backfill or run cleanly (children stopped, ffmpeg killed, temp files removed, recorded as cancelled) and wait until it stopped',
    )
    .argument('<workflowId>', 'the run, e.g. backfill-bicycle-...')
    .option('--no-wait', 'request cancellation and return at once')
    .option('--timeout <s>', 'wait at most this many seconds for the run to stop', '120')
    .option('--json', 'print what happened as JSON')
    .action(async (workflowId: string, opts: { wait: boolean; timeout: string; json?: boolean }) => {
      const timeoutS = Number(opts.timeout);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0)
        throw new UsageError(`--timeout must be a positive number of seconds, got ${JSON.stringify(opts.timeout)}`);
      const config = loadConfig();
      const { client, close } = await temporalClient(config);
      try {
        const r = await cancelRun(client, config, workflowId, { wait: opts.wait, timeoutS });
        if (opts.json) printJson(r);
        else if (!r.requested) {
          console.log(`${workflowId} is not running (status ${r.before}${r.record ? `, record ${r.record}` : ''}): nothing to cancel`);
        } else if (r.after === 'RUNNING') {
          console.log(
            `cancellation of ${workflowId} requested${opts.wait ? `; still running after ${timeoutS} s (is a video worker up?)` : ''}\n  ${workflowUrl(config, workflowId)}`,
          );
        } else {
          console.log(`${workflowId}: ${r.after.toLowerCase()} after ${((r.waitedMs ?? 0) / 1000).toFixed(1)} s${r.record ? `; record: ${r.record}` : ''}`);
        }
        // Nothing to cancel is fine when it already stopped by a cancel; anything else that did not end cancelled is a failure.
        const ok = r.requested ? r.after === 'CANCELLED' || (!opts.wait && r.after === 'RUNNING') : r.before === 'CANCELLED';
        if (!ok) process.exitCode = EXIT.failed;
      } finally {
        await close();
      }
    });
}
