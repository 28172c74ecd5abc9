/**
 * The failure-type table: every reelset failure class (and a plain built-in error) is
 * thrown from each place work happens (an activity, a worker thread inside an
 * activity, a child workflow's activity), and the workflow must see an
 * `ApplicationFailure` whose `type` is the class name, retried or not as that class
 * says. Then the same failures through the CLI's error reporting: type, message and
 * exit code. Time-skipping test server (retries take no real time).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { FAILURE_CLASSES, isNonRetryable, NON_RETRYABLE_ERROR_TYPES } from '../../contracts';
import { ModuleThread } from '../../lib/thread';
import { reportError, EXIT } from '../../cli/common';
import { failureTableWorkflow, type Place } from '../helpers/failure-table.workflows';
import { makeError } from '../helpers/throwing-module';
import { temporalBinaries } from '../helpers/temporal';

jest.setTimeout(180_000);

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const thread = new ModuleThread(require.resolve('../helpers/throwing-module'));
const attempts = new Map<string, number>();

const TYPES = [...Object.keys(FAILURE_CLASSES), 'TypeError'];
const PLACES: Place[] = ['activity', 'thread', 'child'];

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalBinaries().testServer } },
  });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'failures',
    workflowsPath: require.resolve('../helpers/failure-table.workflows'),
    activities: {
      async throwIt(input: { type: string; inThread: boolean }) {
        const key = Context.current().info.workflowExecution?.workflowId ?? '(none)';
        attempts.set(key, (attempts.get(key) ?? 0) + 1);
        if (input.inThread) await thread.call('throwNamed', [input.type]);
        throw makeError(input.type);
      },
    },
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await thread.close();
  await env?.teardown();
});

const table = PLACES.flatMap((place) => TYPES.map((type) => [place, type] as const));

test.each(table)('%s throws %s: the workflow sees that type with its retry decision', async (place, type) => {
  const workflowId = `failures-${place}-${type}`;
  const seen = await env.client.workflow.execute(failureTableWorkflow, { taskQueue: 'failures', workflowId, args: [place, type] });
  expect(seen.type).toBe(type);
  const expectedMessage = makeError(type).message;
  expect(seen.message).toBe(expectedMessage);
  const activityWorkflowId = place === 'child' ? `child-of-${type}-${place}` : workflowId;
  // Non-retryable classes run once; the others are retried (3 attempts in this policy).
  expect(attempts.get(activityWorkflowId)).toBe(isNonRetryable(type) ? 1 : 3);
  if (isNonRetryable(type)) expect(seen.nonRetryable).toBe(true);
});

test.each(PLACES)('%s throws a failure that wraps another: the workflow reports the outer one, not its cause', async (place) => {
  const seen = await env.client.workflow.execute(failureTableWorkflow, {
    taskQueue: 'failures',
    workflowId: `failures-${place}-wrapped`,
    args: [place, 'wrapped'],
  });
  expect(seen.type).toBe('VideoDecodeError');
  expect(seen.message).toBe('cannot decode video "clip.mp4 (video v1)": truncated');
});

test('the table covers every non-retryable type and the retryable ones', () => {
  expect(NON_RETRYABLE_ERROR_TYPES.every((t) => TYPES.includes(t))).toBe(true);
  expect(TYPES.filter((t) => !isNonRetryable(t))).toEqual(expect.arrayContaining(['TransientError', 'ReelsetError', 'TypeError']));
});

test.each(TYPES)('the CLI reports a run that failed with %s by its type, and exits 1', async (type) => {
  // A parent whose child failed: the CLI sees WorkflowFailedError -> ChildWorkflowFailure -> ActivityFailure -> ApplicationFailure.
  const err = await env.client.workflow.execute('throwingChild', { taskQueue: 'failures', workflowId: `cli-${type}`, args: [type] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const out: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
  try {
    expect(reportError(err, true)).toBe(EXIT.failed);
  } finally {
    write.mockRestore();
  }
  const printed = JSON.parse(out.join('')) as { error: { type: string; message: string; retryable: boolean } };
  expect(printed.error.type).toBe(type);
  expect(printed.error.message).toContain(makeError(type).message);
  expect(printed.error.retryable).toBe(!isNonRetryable(type));
});
