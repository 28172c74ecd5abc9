/**
 * Determinism across workflow changes: every history under `test/fixtures/` replays with
 * today's workflow code without a non-determinism error.
 *
 * - `nc-replay-*`: new-category histories recorded with the code of b7ed073 (before its
 *   steps moved into `workflows/pipeline.ts` and the run report was added behind a
 *   patch): one completed, one failed in training.
 * - `replay-*`: every workflow that parses its own input, recorded with the code of
 *   8f958df (before the fan-outs shared `workflows/fan-out.ts`) by
 *   `test/helpers/replay-fixtures.ts`, which says what each covers (failing children,
 *   continue-as-new, cancellation, the patches) and how to record one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../helpers/temporal';

jest.setTimeout(180_000);

const FIXTURES = path.join(__dirname, '../fixtures');
const FILES = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.history.json'))
  .sort();

function history(name: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')));
}

function workflowType(h: temporal.api.history.v1.History): string {
  return h.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '';
}

let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  // One bundle of today's workflow code for every replay (bundling takes seconds).
  bundle = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
  });
});

test('the fixtures cover every workflow that parses its input, continue-as-new, failing children and cancellation', () => {
  const all = FILES.map((f) => history(f));
  expect(new Set(all.map(workflowType))).toEqual(
    new Set(['newCategoryWorkflow', 'retrainWorkflow', 'retrainAllWorkflow', 'backfillWorkflow', 'batchPredictWorkflow']),
  );
  const ends = (type: string) =>
    all.some((h) => h.events[h.events.length - 1]?.eventType === temporal.api.enums.v1.EventType[type as keyof typeof temporal.api.enums.v1.EventType]);
  expect(ends('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW')).toBe(true);
  expect(ends('EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED')).toBe(true);
  expect(ends('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED')).toBe(true);
  // A continued run's first event carries the state it continues with.
  expect(all.some((h) => h.events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId)).toBe(true);
  for (const type of ['newCategoryWorkflow', 'retrainWorkflow', 'retrainAllWorkflow', 'backfillWorkflow', 'batchPredictWorkflow']) {
    expect(all.some((h) => workflowType(h) === type && h.events.some((e) => e.childWorkflowExecutionFailedEventAttributes))).toBe(true);
  }
});

test.each(FILES)('%s replays with the current workflow code', async (file) => {
  const h = history(file);
  expect(h.events.length).toBeGreaterThan(4);
  // The id the run had: the file's name, less the run of its chain (`-run1`, `-last`).
  const workflowId = file.replace(/\.history\.json$/, '').replace(/-(run\d+|last)$/, '');
  await Worker.runReplayHistory({ workflowBundle: bundle, replayName: file }, h, workflowId);
});

test('a history whose commands differ is caught (the replay test can fail)', async () => {
  const h = history('nc-replay-ok.history.json');
  // Rename the first activity the history scheduled: the code's command (startRun) no longer matches it.
  const scheduled = h.events.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!;
  expect(scheduled.activityType?.name).toBe('startRun');
  scheduled.activityType = { name: 'startRunRenamed' };
  await expect(Worker.runReplayHistory({ workflowBundle: bundle, replayName: 'tampered' }, h, 'nc-replay-ok')).rejects.toThrow(/[Nn]ondeterminism/);
});
