/**
 * `reelset schedule apply|show|trigger|pause|unpause`: the retraining schedules declared in
 * `infra/schedules.json`, applied to Temporal idempotently.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
  type ScheduleOptions,
} from '@temporalio/client';
import {
  calendarValues,
  failureOf,
  formatIssues,
  SchedulesFile,
  stableJson,
  type RetrainAllRequest,
  type RetrainAllResult,
  type ScheduleCalendar,
  type ScheduleConfig,
} from '../../contracts';
import { loadConfig, REELSET_ROOT, type Config } from '../../lib/config';
import { retrainAllWorkflow } from '../../workflows/retrain';
import { printJson, temporalClient, UsageError } from '../common';

/** The schedules file in the repository. */
export const DEFAULT_SCHEDULES_FILE = path.join(REELSET_ROOT, 'infra/schedules.json');

/**
 * Read and validate a schedules file.
 *
 * @throws UsageError naming the file and the invalid fields.
 */
export function readSchedulesFile(file: string): SchedulesFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
  const parsed = SchedulesFile.safeParse(raw);
  if (!parsed.success) throw new UsageError(`${file}: ${formatIssues(parsed.error, 20)}`);
  return parsed.data;
}

const OVERLAP: Record<ScheduleConfig['overlap'], ScheduleOverlapPolicy> = {
  skip: ScheduleOverlapPolicy.SKIP,
  buffer_one: ScheduleOverlapPolicy.BUFFER_ONE,
  buffer_all: ScheduleOverlapPolicy.BUFFER_ALL,
  cancel_other: ScheduleOverlapPolicy.CANCEL_OTHER,
  terminate_other: ScheduleOverlapPolicy.TERMINATE_OTHER,
  allow_all: ScheduleOverlapPolicy.ALLOW_ALL,
};

/** Temporal's overlap policy of a schedule's config (what `trigger` passes too). */
export function overlapPolicy(s: ScheduleConfig): ScheduleOverlapPolicy {
  return OVERLAP[s.overlap];
}

function calendarSpec(c: ScheduleCalendar) {
  return {
    second: c.second,
    minute: c.minute,
    hour: c.hour,
    dayOfMonth: c.dayOfMonth,
    month: c.month,
    dayOfWeek: c.dayOfWeek,
    ...(c.comment ? { comment: c.comment } : {}),
  } as NonNullable<ScheduleOptions['spec']['calendars']>[number];
}

/** The fan-out's input a schedule starts. */
export function scheduleArgs(s: ScheduleConfig): RetrainAllRequest {
  return { labels: s.labels, concurrency: s.concurrency, force: s.force, overrides: s.overrides };
}

/**
 * The Temporal schedule of a config entry: fires at the calendars in the time zone, starts
 * `retrainAllWorkflow` on the video task queue with workflow id `<id>-<fire time>`, with the
 * overlap policy, catch-up window and pause-on-failure of the file.
 */
export function scheduleOptions(s: ScheduleConfig, config: Pick<Config, 'REELSET_VIDEO_TASK_QUEUE'>): ScheduleOptions {
  return {
    scheduleId: s.id,
    spec: {
      calendars: s.calendars.map(calendarSpec),
      timezone: s.timeZone,
      ...(s.jitter > 0 ? { jitter: s.jitter } : {}),
    },
    action: {
      type: 'startWorkflow',
      workflowType: retrainAllWorkflow,
      workflowId: s.id,
      taskQueue: config.REELSET_VIDEO_TASK_QUEUE,
      args: [scheduleArgs(s)],
    },
    policies: { overlap: overlapPolicy(s), catchupWindow: s.catchupWindow, pauseOnFailure: s.pauseOnFailure },
    memo: { managedBy: 'reelset schedule apply', description: s.description },
    state: { paused: s.paused, note: s.paused ? `created paused: ${s.description}` : s.description },
  };
}

/**
 * What differs between a schedule's config and its description from the server: the names
 * of the fields (empty when they are equal). Calendars are compared by the seconds they
 * match, not by how the server stores their ranges; durations in milliseconds.
 */
export function scheduleDiff(s: ScheduleConfig, d: ScheduleDescription, config: Pick<Config, 'REELSET_VIDEO_TASK_QUEUE'>): string[] {
  const want = scheduleOptions(s, config);
  const diff: string[] = [];
  const calsWant = s.calendars.map((c) => ({ v: calendarValues(c as unknown as Record<string, unknown>), comment: c.comment ?? '' }));
  const calsHave = (d.spec.calendars ?? []).map((c) => ({ v: calendarValues(c as unknown as Record<string, unknown>), comment: c.comment ?? '' }));
  if (stableJson(calsWant) !== stableJson(calsHave)) diff.push('calendars');
  if ((d.spec.intervals ?? []).length) diff.push('intervals');
  if ((d.spec.timezone ?? 'UTC') !== s.timeZone) diff.push('timeZone');
  if ((Number(d.spec.jitter ?? 0) || 0) !== s.jitter) diff.push('jitter');
  if (d.policies.overlap !== want.policies!.overlap) diff.push('overlap');
  if (Number(d.policies.catchupWindow) !== s.catchupWindow) diff.push('catchupWindow');
  if (Boolean(d.policies.pauseOnFailure) !== s.pauseOnFailure) diff.push('pauseOnFailure');
  const a = d.action;
  if (a.type !== 'startWorkflow') diff.push('action');
  else {
    if (a.workflowType !== 'retrainAllWorkflow') diff.push('workflowType');
    if (a.workflowId !== s.id) diff.push('workflowId');
    if (a.taskQueue !== config.REELSET_VIDEO_TASK_QUEUE) diff.push('taskQueue');
    if (stableJson(a.args ?? []) !== stableJson([scheduleArgs(s)])) diff.push('input (labels, concurrency, force, overrides)');
  }
  return diff;
}

/** What `apply` did to one schedule. */
export interface ApplyOutcome {
  id: string;
  action: 'created' | 'updated' | 'unchanged';
  /** Fields that differed (updated). */
  changed: string[];
  paused: boolean;
  note?: string;
}

/**
 * Apply every schedule of the file: create the missing ones, update those whose
 * definition differs (spec, action, policies; never their pause state, which belongs to
 * operators and to pause-on-failure), leave the others. Idempotent.
 */
export async function applySchedules(client: Client, file: SchedulesFile, config: Pick<Config, 'REELSET_VIDEO_TASK_QUEUE'>): Promise<ApplyOutcome[]> {
  const out: ApplyOutcome[] = [];
  for (const s of file.schedules) {
    const handle = client.schedule.getHandle(s.id);
    let d: ScheduleDescription | undefined;
    try {
      d = await handle.describe();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    if (!d) {
      await client.schedule.create(scheduleOptions(s, config));
      out.push({ id: s.id, action: 'created', changed: [], paused: s.paused });
      continue;
    }
    const changed = scheduleDiff(s, d, config);
    if (changed.length) {
      const want = scheduleOptions(s, config);
      await handle.update((prev) => ({
        ...prev,
        spec: want.spec,
        action: want.action,
        policies: want.policies,
        state: { paused: prev.state.paused, note: prev.state.note },
      }));
    }
    out.push({ id: s.id, action: changed.length ? 'updated' : 'unchanged', changed, paused: d.state.paused, ...(d.state.note ? { note: d.state.note } : {}) });
  }
  return out;
}

/** One started run of a schedule, with how it ended. */
export interface ScheduleRunView {
  scheduledAt: string;
  startedAt: string;
  workflowId: string;
  status: string;
  /** `3 labels: 1 retrained, 2 unchanged`, or the failure. */
  summary: string;
}

/** A schedule as `show` prints it. */
export interface ScheduleView {
  id: string;
  exists: boolean;
  paused: boolean;
  note?: string;
  timeZone: string;
  when: string[];
  overlap: string;
  catchupWindowMs: number;
  pauseOnFailure: boolean;
  action: string;
  nextRuns: string[];
  counts: { taken: number; skippedOverlap: number; missedCatchupWindow: number };
  running: string[];
  lastResults: ScheduleRunView[];
  /** Fields that differ from the file (run `apply`). */
  driftFromFile: string[];
}

function localTime(d: Date, tz: string): string {
  return `${new Intl.DateTimeFormat('sv-SE', { timeZone: tz, dateStyle: 'short', timeStyle: 'medium' }).format(d)} ${tz}`;
}

function calendarText(c: ScheduleCalendar): string {
  const f = (v: unknown) => (v === '*' ? '*' : Array.isArray(v) ? v.join(',') : String(v));
  const two = (v: unknown) => (typeof v === 'number' ? String(v).padStart(2, '0') : f(v));
  const days = c.dayOfWeek === '*' ? 'every day' : `on ${f(c.dayOfWeek)}`;
  const dom = c.dayOfMonth === '*' ? '' : ` day ${f(c.dayOfMonth)} of the month`;
  const months = c.month === '*' ? '' : ` in ${f(c.month)}`;
  return `${two(c.hour)}:${two(c.minute)}:${two(c.second)} ${days}${dom}${months}${c.comment ? ` (${c.comment})` : ''}`;
}

async function runSummary(client: Client, workflowId: string): Promise<{ status: string; summary: string }> {
  const h = client.workflow.getHandle<typeof retrainAllWorkflow>(workflowId);
  try {
    const d = await h.describe();
    const status = d.status.name.toLowerCase();
    if (status === 'running') return { status, summary: 'running' };
    if (status === 'completed') {
      const r: RetrainAllResult = await h.result();
      return { status, summary: `${r.labels.length} labels: ${r.counts.retrained} retrained, ${r.counts.unchanged} unchanged, ${r.counts.failed} failed` };
    }
    const err = await h.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    const f = failureOf(err);
    return { status, summary: `${f.type}: ${f.message}` };
  } catch (err) {
    return { status: 'unknown', summary: (err as Error).message };
  }
}

/** Describe a schedule of the file, with its next fire times and the results of its latest runs. */
export async function scheduleView(client: Client, s: ScheduleConfig, config: Pick<Config, 'REELSET_VIDEO_TASK_QUEUE'>, next = 5): Promise<ScheduleView> {
  const base = {
    id: s.id,
    timeZone: s.timeZone,
    when: s.calendars.map(calendarText),
    overlap: s.overlap,
    catchupWindowMs: s.catchupWindow,
    pauseOnFailure: s.pauseOnFailure,
    action: `retrainAllWorkflow on ${config.REELSET_VIDEO_TASK_QUEUE}: labels ${s.labels === 'all' ? 'all with a published model' : s.labels.join(', ')}, ${s.concurrency} at a time${s.force ? ', forced' : ''}`,
  };
  let d: ScheduleDescription;
  try {
    d = await client.schedule.getHandle(s.id).describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    return {
      ...base,
      exists: false,
      paused: false,
      nextRuns: [],
      counts: { taken: 0, skippedOverlap: 0, missedCatchupWindow: 0 },
      running: [],
      lastResults: [],
      driftFromFile: [],
    };
  }
  const lastResults: ScheduleRunView[] = [];
  for (const a of [...d.info.recentActions].reverse()) {
    const workflowId = a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : '?';
    lastResults.push({ scheduledAt: a.scheduledAt.toISOString(), startedAt: a.takenAt.toISOString(), workflowId, ...(await runSummary(client, workflowId)) });
  }
  return {
    ...base,
    exists: true,
    paused: d.state.paused,
    ...(d.state.note ? { note: d.state.note } : {}),
    nextRuns: d.info.nextActionTimes.slice(0, next).map((t) => `${localTime(t, s.timeZone)} (${t.toISOString()})`),
    counts: { taken: d.info.numActionsTaken, skippedOverlap: d.info.numActionsSkippedOverlap, missedCatchupWindow: d.info.numActionsMissedCatchupWindow },
    running: d.info.runningActions.map((r) => r.workflow.workflowId),
    lastResults,
    driftFromFile: scheduleDiff(s, d, config),
  };
}

function pickSchedules(file: SchedulesFile, id: string | undefined): ScheduleConfig[] {
  if (id === undefined) return file.schedules;
  const s = file.schedules.find((x) => x.id === id);
  if (!s) throw new UsageError(`no schedule ${JSON.stringify(id)} in the file (it has: ${file.schedules.map((x) => x.id).join(', ')})`);
  return [s];
}

function one(file: SchedulesFile, id: string | undefined): ScheduleConfig {
  const list = pickSchedules(file, id);
  if (list.length !== 1) throw new UsageError(`the file has ${list.length} schedules: say which with --id (${list.map((x) => x.id).join(', ')})`);
  return list[0]!;
}

async function withSchedule<T>(id: string, client: Client, fn: (h: ScheduleHandle) => Promise<T>): Promise<T> {
  try {
    return await fn(client.schedule.getHandle(id));
  } catch (err) {
    if (err instanceof ScheduleNotFoundError)
      throw new UsageError(`schedule ${JSON.stringify(id)} does not exist in Temporal: run \`reelset schedule apply\` first`);
    throw err;
  }
}

/** Register the schedule commands. */
export function registerScheduleCommands(program: Command): void {
  const schedule = program
    .command('schedule')
    .description(`the retraining schedules declared in ${path.relative(process.cwd(), DEFAULT_SCHEDULES_FILE) || DEFAULT_SCHEDULES_FILE}`);
  const fileOption = ['--file <file>', 'schedules file', DEFAULT_SCHEDULES_FILE] as const;

  schedule
    .command('apply')
    .description('create, update or leave each schedule of the file (idempotent; never changes a pause state)')
    .option(...fileOption)
    .option('--json', 'print what was done as JSON')
    .action(async (opts: { file: string; json?: boolean }) => {
      const file = readSchedulesFile(opts.file);
      const config = loadConfig();
      const { client, close } = await temporalClient(config);
      try {
        const done = await applySchedules(client, file, config);
        if (opts.json) printJson({ file: opts.file, schedules: done });
        else {
          for (const o of done) {
            console.log(
              `${o.id}: ${o.action}${o.changed.length ? ` (${o.changed.join(', ')})` : ''}${o.paused ? `; PAUSED${o.note ? `: ${o.note}` : ''} (reelset schedule unpause --id ${o.id})` : ''}`,
            );
          }
        }
      } finally {
        await close();
      }
    });

  schedule
    .command('show')
    .description('each schedule: when it fires, its policies, the next runs and the results of the last ones')
    .option(...fileOption)
    .option('--id <id>', 'only this schedule')
    .option('--next <n>', 'next fire times to list', '5')
    .option('--json', 'print as JSON')
    .action(async (opts: { file: string; id?: string; next: string; json?: boolean }) => {
      const file = readSchedulesFile(opts.file);
      const config = loadConfig();
      const { client, close } = await temporalClient(config);
      try {
        const views: ScheduleView[] = [];
        for (const s of pickSchedules(file, opts.id)) views.push(await scheduleView(client, s, config, Number(opts.next) || 5));
        if (opts.json) {
          printJson({ file: opts.file, schedules: views });
          return;
        }
        for (const v of views) {
          const lines = [
            `schedule ${v.id}${v.exists ? (v.paused ? `  PAUSED${v.note ? `: ${v.note}` : ''}` : '  active') : '  NOT CREATED (run `reelset schedule apply`)'}`,
          ];
          lines.push(`  when: ${v.when.join('; ')} (${v.timeZone})`);
          lines.push(
            `  overlap ${v.overlap}, catch-up window ${(v.catchupWindowMs / 3_600_000).toFixed(2).replace(/\.?0+$/, '')} h, pause on failure ${v.pauseOnFailure ? 'yes' : 'no'}`,
          );
          lines.push(`  action: ${v.action}`);
          if (v.driftFromFile.length) lines.push(`  differs from the file: ${v.driftFromFile.join(', ')} (run \`reelset schedule apply\`)`);
          if (v.exists) {
            lines.push(`  next runs:${v.nextRuns.length ? '' : ' none (paused)'}`);
            for (const n of v.nextRuns) lines.push(`    ${n}`);
            lines.push(
              `  runs started ${v.counts.taken}, skipped as overlapping ${v.counts.skippedOverlap}, missed (past the catch-up window) ${v.counts.missedCatchupWindow}`,
            );
            for (const r of v.running) lines.push(`  running now: ${r}`);
            lines.push(`  last results:${v.lastResults.length ? '' : ' none yet'}`);
            for (const r of v.lastResults) lines.push(`    ${r.scheduledAt}  ${r.workflowId}  ${r.status}: ${r.summary}`);
          }
          console.log(lines.join('\n'));
        }
      } finally {
        await close();
      }
    });

  schedule
    .command('trigger')
    .description("start the schedule's action now, honouring its overlap policy (with skip: nothing starts while a run is going)")
    .option(...fileOption)
    .option('--id <id>', 'which schedule (needed when the file has several)')
    .action(async (opts: { file: string; id?: string }) => {
      const s = one(readSchedulesFile(opts.file), opts.id);
      const { client, close } = await temporalClient();
      try {
        await withSchedule(s.id, client, (h) => h.trigger(overlapPolicy(s)));
        console.log(`${s.id}: triggered (overlap policy ${s.overlap}); see \`reelset schedule show --id ${s.id}\``);
      } finally {
        await close();
      }
    });

  for (const [name, pause] of [
    ['pause', true],
    ['unpause', false],
  ] as const) {
    schedule
      .command(name)
      .description(pause ? 'pause a schedule (no run starts until unpaused)' : 'unpause a schedule (after a failure paused it, or an operator did)')
      .option(...fileOption)
      .option('--id <id>', 'which schedule (needed when the file has several)')
      .option('--note <note>', 'why (shown by `schedule show` and the Temporal UI)')
      .action(async (opts: { file: string; id?: string; note?: string }) => {
        const s = one(readSchedulesFile(opts.file), opts.id);
        const { client, close } = await temporalClient();
        try {
          await withSchedule(s.id, client, (h) =>
            pause ? h.pause(opts.note ?? 'paused with reelset schedule pause') : h.unpause(opts.note ?? 'unpaused with reelset schedule unpause'),
          );
          console.log(`${s.id}: ${pause ? 'paused' : 'unpaused'}`);
        } finally {
          await close();
        }
      });
  }
}
