/**
 * The one place that decides what retries and how long activities may take.
 * Pure constants: safe in the workflow sandbox.
 */
import type { Duration } from '@temporalio/common';
import type { ActivityOptions, RetryPolicy } from '@temporalio/workflow';

/**
 * Failure types never retried: bad input stays bad. Mirrors `NON_RETRYABLE_ERRORS` in
 * `activities/common/errors.ts` (a unit test keeps them equal).
 */
export const NON_RETRYABLE_ERROR_TYPES = ['VideoDecodeError', 'InvalidInputError', 'CatalogError', 'DatasetError'];

/** Exponential backoff from 1 s to 1 min, 6 attempts, bad input not retried. */
export const DEFAULT_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 6,
  nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
};

/** Short activities: database rows, manifests, search. */
export const SHORT: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  scheduleToCloseTimeout: '30 minutes',
  retry: DEFAULT_RETRY,
};

/**
 * Long activities (extraction, embedding, training): they heartbeat, so a lost worker
 * is noticed after `heartbeatTimeoutS` and the activity is retried on another one.
 */
export function long(heartbeatTimeoutS: number, startToClose: Duration = '2 hours', taskQueue?: string): ActivityOptions {
  return {
    startToCloseTimeout: startToClose,
    heartbeatTimeout: `${heartbeatTimeoutS} seconds`,
    retry: DEFAULT_RETRY,
    ...(taskQueue ? { taskQueue } : {}),
  };
}

/** Names of the search attributes the workflows set (registered by `infra/services.sh`). */
export const SEARCH_ATTRIBUTES = { label: 'ReelsetLabel', stage: 'ReelsetStage' } as const;
