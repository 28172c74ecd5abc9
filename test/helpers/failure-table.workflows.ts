/**
 * Workflows of the failure-type table test (`test/workflow/failures.test.ts`): each
 * runs one activity that throws a named failure from one place, and reports what the
 * workflow saw. Deterministic, imports activities as types only, like the real ones.
 */
import { executeChild, proxyActivities } from '@temporalio/workflow';
import { failureOf } from '../../contracts';

/** Where the failure is thrown. */
export type Place = 'activity' | 'thread' | 'child';

/** What a workflow saw of a failure. */
export interface Seen {
  type: string;
  message: string;
  nonRetryable: boolean | undefined;
}

export interface ThrowingActivities {
  /** Throws `type` in the activity itself, or in a worker thread the activity calls. */
  throwIt(input: { type: string; inThread: boolean }): Promise<void>;
}

const { throwIt } = proxyActivities<ThrowingActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '1 second', backoffCoefficient: 1, nonRetryableErrorTypes: undefined },
});

function seen(err: unknown): Seen {
  const { type, message } = failureOf(err);
  let e: unknown = err;
  let nonRetryable: boolean | undefined;
  while (e instanceof Error) {
    if ('nonRetryable' in e) nonRetryable = (e as { nonRetryable?: boolean }).nonRetryable;
    e = (e as { cause?: unknown }).cause;
  }
  return { type, message, nonRetryable };
}

/** Child: runs the throwing activity; its failure is what the parent sees. */
export async function throwingChild(type: string): Promise<void> {
  await throwIt({ type, inThread: false });
}

/** Throw `type` from `place` and return what the workflow saw. */
export async function failureTableWorkflow(place: Place, type: string): Promise<Seen> {
  try {
    if (place === 'child') await executeChild(throwingChild, { args: [type], workflowId: `child-of-${type}-${place}` });
    else await throwIt({ type, inThread: place === 'thread' });
    return { type: 'none', message: 'nothing was thrown', nonRetryable: undefined };
  } catch (err) {
    return seen(err);
  }
}
