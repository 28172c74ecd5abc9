/**
 * Workflows of the fan-out tests (`test/workflow/fan-out.test.ts`): a parent that runs
 * `workflows/fan-out.ts` over numbered items, one child per item (the child runs one
 * activity), and continues as new when the helper says so. Deterministic, activities as
 * types only, like the real ones.
 */
import {
  ActivityCancellationType,
  CancellationScope,
  continueAsNew,
  executeChild,
  isCancellation,
  proxyActivities,
  setHandler,
  defineQuery,
  workflowInfo,
} from '@temporalio/workflow';
import { failureOf } from '../../contracts';
import { fanOut, FanOutPool } from '../../workflows/fan-out';

export interface FanOutTestActivities {
  /** Work on one item; the mock decides how long and whether it fails. */
  work(input: { item: number }): Promise<number>;
  /** Called by the parent after a cancellation, once every running child has settled. */
  cancelled(input: { started: number[]; failures: FanOutTestResult['failures'] }): Promise<void>;
}

export interface FanOutTestInput {
  items: number;
  concurrency: number;
  /** The caller's history bound (events); none: only Temporal's suggestion. */
  maxEvents?: number;
}

/** State the test parent carries through continue-as-new: the cursor and what was done. */
export interface FanOutTestState {
  cursor: number;
  done: number[];
  failures: Array<{ item: number; type: string }>;
  runs: number;
}

export interface FanOutTestResult {
  /** Items that succeeded, in the order they finished. */
  done: number[];
  failures: Array<{ item: number; type: string }>;
  /** Runs of the continue-as-new chain. */
  runs: number;
}

/** Query: items running now and started so far in this run. */
export const fanOutStateQuery = defineQuery<{ running: number; started: number[] }>('fanOutState');

const { cancelled } = proxyActivities<FanOutTestActivities>({ startToCloseTimeout: '1 minute' });

/** One item: one activity, not retried (a failing item fails its child); cancelled, it waits for the activity, as the extract child does. */
export async function fanOutItemWorkflow(item: number): Promise<number> {
  const { work } = proxyActivities<FanOutTestActivities>({
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: '2 seconds',
    retry: { maximumAttempts: 1 },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  return work({ item });
}

/** The parent: items `0..items-1` through the shared fan-out, one child each. */
export async function fanOutTestWorkflow(input: FanOutTestInput, state?: FanOutTestState): Promise<FanOutTestResult> {
  const done = [...(state?.done ?? [])];
  const failures = [...(state?.failures ?? [])];
  const started: number[] = [];
  const items = Array.from({ length: input.items }, (_, i) => i);
  const pool = new FanOutPool<number, number>({
    concurrency: input.concurrency,
    start: (item) => {
      started.push(item);
      return executeChild(fanOutItemWorkflow, { workflowId: `${workflowInfo().workflowId}/item/${item}`, args: [item] });
    },
    onSuccess: (item) => done.push(item),
    onFailure: (item, err) => failures.push({ item, type: isCancellation(err) ? 'cancelled' : failureOf(err).type }),
  });
  setHandler(fanOutStateQuery, () => ({ running: pool.running, started }));
  const historyBound = input.maxEvents ? { maxEvents: input.maxEvents, eventsPerItem: 9, reserve: 20 } : undefined;
  try {
    const out = await fanOut(pool, items, { cursor: state?.cursor ?? 0, historyBound });
    if (!out.done) await continueAsNew<typeof fanOutTestWorkflow>(input, { cursor: out.cursor, done, failures, runs: (state?.runs ?? 1) + 1 });
    return { done, failures, runs: state?.runs ?? 1 };
  } catch (err) {
    if (isCancellation(err)) {
      // The children finish cancelling first; then the end is recorded, as the backfill does.
      await CancellationScope.nonCancellable(async () => {
        await pool.settled();
        await cancelled({ started, failures });
      });
    }
    throw err;
  }
}
