/**
 * Determinism across workflow changes: histories recorded with the new-category code
 * of b7ed073 (before its steps moved into `workflows/pipeline.ts` and the run report was
 * added behind a patch) replay with today's code without a non-determinism error. One
 * run completed; one failed in training (the failure branch).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../helpers/temporal';

const FIXTURES = path.join(__dirname, '../fixtures');

function history(name: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')));
}

test.each(['nc-replay-ok.history.json', 'nc-replay-fail.history.json'])('%s replays with the current workflow code', async (file) => {
  const h = history(file);
  expect(h.events.length).toBeGreaterThan(50);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, replayName: file }, h, file.replace('.history.json', ''));
}, 120_000);

test('a history whose commands differ is caught (the replay test can fail)', async () => {
  const h = history('nc-replay-ok.history.json');
  // Rename the first activity the history scheduled: the code's command (startRun) no longer matches it.
  const scheduled = h.events.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!;
  expect(scheduled.activityType?.name).toBe('startRun');
  scheduled.activityType = { name: 'startRunRenamed' };
  const tampered = h;
  await expect(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, replayName: 'tampered' }, tampered, 'nc-replay-ok')).rejects.toThrow(/[Nn]ondeterminism/);
}, 120_000);
