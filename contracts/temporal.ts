/**
 * Everything Temporal-facing that workflows, workers and the CLI share: the retry
 * policies and activity timeouts (the one place that decides what retries and how long
 * activities may take), the search attributes, and the query and signal definitions.
 * Pure: safe in the workflow sandbox; the CLI imports it by value.
 */
import { defineSearchAttributeKey, SearchAttributeType, type Duration, type RetryPolicy } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from './failures';
import type { Stage, Step } from './steps';

/** Exponential backoff from 1 s to 1 min, 6 attempts; the failure types of `NON_RETRYABLE_ERROR_TYPES` never retried. */
export const DEFAULT_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 6,
  nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
};

/** Short activities (database rows, manifests, search): 2 minutes an attempt, 30 minutes in all. */
export const SHORT: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  scheduleToCloseTimeout: '30 minutes',
  retry: DEFAULT_RETRY,
};

/**
 * Long activities (extraction, embedding, training): they heartbeat, so a lost worker
 * is noticed after `heartbeatTimeoutS` and the activity is retried on another one.
 *
 * @param heartbeatTimeoutS seconds without a heartbeat before an attempt counts as lost.
 * @param startToClose most time one attempt may take.
 * @param taskQueue another task queue than the workflow's (the GPU queue).
 */
export function long(heartbeatTimeoutS: number, startToClose: Duration = '2 hours', taskQueue?: string): ActivityOptions {
  return {
    startToCloseTimeout: startToClose,
    heartbeatTimeout: `${heartbeatTimeoutS} seconds`,
    retry: DEFAULT_RETRY,
    ...(taskQueue ? { taskQueue } : {}),
  };
}

/** Names of the search attributes the workflows set (registered by `infra/services.sh`; Keyword). */
export const SEARCH_ATTRIBUTES = { label: 'ReelsetLabel', stage: 'ReelsetStage' } as const;

/** Typed keys of {@link SEARCH_ATTRIBUTES}: the run's label and its stage (a step, `done` or `failed`). */
export const LABEL_ATTRIBUTE = defineSearchAttributeKey(SEARCH_ATTRIBUTES.label, SearchAttributeType.KEYWORD);
export const STAGE_ATTRIBUTE = defineSearchAttributeKey(SEARCH_ATTRIBUTES.stage, SearchAttributeType.KEYWORD);

/** Answer of {@link progressQuery}: where a new-category run is. */
export interface Progress {
  label: string;
  /** The step running now, or `done` / `failed` at the end (the `ReelsetStage` search attribute says the same). */
  stage: Stage;
  stepsDone: Step[];
  videos: { total: number; extracted: number; failed: number; running: number };
}

/** Query: where the run is (stage, steps done, videos extracted). Use as `handle.query(progressQuery)`. */
export const progressQuery = defineQuery<Progress>('progress');
