/** `reelset runs list`: reelset's runs from Temporal visibility, by label and status. */
import type { Command } from 'commander';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { LABEL_ATTRIBUTE, RUN_STATUSES, runsListQuery, STAGE_ATTRIBUTE, type RunStatusName } from '../../contracts';
import { printJson, temporalClient, UsageError } from '../common';

/** One run as `runs list` shows it. */
export interface RunListRow {
  workflowId: string;
  runId: string;
  type: string;
  label: string | null;
  stage: string | null;
  /** Temporal execution status, lower case (`running`, `completed`, `failed`, ...). */
  status: string;
  startTime: string;
  closeTime: string | null;
  /** Seconds from start to close (or to now while running). */
  durationS: number;
}

/** A visibility row as a {@link RunListRow}. */
export function runRow(info: WorkflowExecutionInfo, now: Date = new Date()): RunListRow {
  const label = info.typedSearchAttributes.get(LABEL_ATTRIBUTE) ?? null;
  const stage = info.typedSearchAttributes.get(STAGE_ATTRIBUTE) ?? null;
  const end = info.closeTime ?? now;
  return {
    workflowId: info.workflowId,
    runId: info.runId,
    type: info.type,
    label,
    stage,
    status: info.status.name.toLowerCase(),
    startTime: info.startTime.toISOString(),
    closeTime: info.closeTime?.toISOString() ?? null,
    durationS: Math.max(0, (end.getTime() - info.startTime.getTime()) / 1000),
  };
}

function duration(s: number): string {
  if (s < 90) return `${s.toFixed(1)}s`;
  if (s < 5400) return `${(s / 60).toFixed(1)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

/** Register `runs list` on the `runs` command. */
export function registerRunsList(runs: Command): void {
  runs
    .command('list')
    .description('runs of reelset (new-category, retrain, the nightly fan-out), newest first, from Temporal visibility')
    .option('--label <label>', 'only runs of this label (the ReelsetLabel search attribute)')
    .option('--status <status>', `only runs in this execution status: ${Object.keys(RUN_STATUSES).join(', ')}`)
    .option('--type <workflowType>', 'only this workflow type, e.g. retrainWorkflow')
    .option('--limit <n>', 'at most this many runs', '20')
    .option('--json', 'print the runs as JSON')
    .action(async (opts: { label?: string; status?: string; type?: string; limit: string; json?: boolean }) => {
      if (opts.status !== undefined && !(opts.status in RUN_STATUSES)) {
        throw new UsageError(`--status ${JSON.stringify(opts.status)} is not one of: ${Object.keys(RUN_STATUSES).join(', ')}`);
      }
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive integer, got ${JSON.stringify(opts.limit)}`);
      const query = runsListQuery({ label: opts.label?.trim().toLowerCase(), status: opts.status as RunStatusName | undefined, type: opts.type });
      const { client, close } = await temporalClient();
      try {
        const rows: RunListRow[] = [];
        for await (const info of client.workflow.list({ query, pageSize: Math.min(limit, 100) })) {
          rows.push(runRow(info));
          if (rows.length >= limit) break;
        }
        if (opts.json) {
          printJson({ query, runs: rows });
          return;
        }
        if (!rows.length) {
          console.log(`no run matches (${query})`);
          return;
        }
        const w = Math.min(64, Math.max(...rows.map((r) => r.workflowId.length), 11));
        console.log(
          `${'workflow id'.padEnd(w)}  ${'type'.padEnd(19)} ${'label'.padEnd(14)} ${'stage'.padEnd(10)} ${'status'.padEnd(10)} ${'started'.padEnd(20)} time`,
        );
        for (const r of rows) {
          console.log(
            `${r.workflowId.padEnd(w)}  ${r.type.padEnd(19)} ${(r.label ?? '-').padEnd(14)} ${(r.stage ?? '-').padEnd(10)} ${r.status.padEnd(10)} ${r.startTime.slice(0, 19).replace('T', ' ').padEnd(20)} ${duration(r.durationS)}`,
          );
        }
      } finally {
        await close();
      }
    });
}
