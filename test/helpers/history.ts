import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

/** One run of a continue-as-new chain: its run id, its history and its length in events. */
export interface ChainRun {
  runId: string;
  events: temporal.api.history.v1.IHistoryEvent[];
  length: number;
}

/**
 * Every run of a workflow's continue-as-new chain, first to last, by following each
 * run's closing `WorkflowExecutionContinuedAsNew` event to the next run.
 *
 * @param firstRunId the run id the start returned (`handle.firstExecutionRunId`).
 */
export async function chainHistories(client: Client, workflowId: string, firstRunId: string): Promise<ChainRun[]> {
  const runs: ChainRun[] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events: temporal.api.history.v1.IHistoryEvent[] = history.events ?? [];
    runs.push({ runId, events, length: events.length });
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    if (runs.length > 10_000) throw new Error(`continue-as-new chain of ${workflowId} longer than 10,000 runs`);
  }
  return runs;
}

/** Workflow ids of the children a run started (`StartChildWorkflowExecutionInitiated`). */
export function childIds(events: temporal.api.history.v1.IHistoryEvent[]): string[] {
  return events.map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId).filter((id): id is string => !!id);
}

/** The activity types a history scheduled, in order (one entry per `ActivityTaskScheduled` event). */
export function scheduledActivities(events: temporal.api.history.v1.IHistoryEvent[]): string[] {
  return events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter((n): n is string => !!n);
}

/**
 * Every run of a workflow's chain, first to last, starting from its latest run and
 * following each run's `continuedExecutionRunId` back (for runs started by someone else,
 * e.g. the CLI, whose first run id the test does not know).
 */
export async function chainFromLatest(client: Client, workflowId: string): Promise<ChainRun[]> {
  const runs: ChainRun[] = [];
  let runId: string | undefined = (await client.workflow.getHandle(workflowId).describe()).runId;
  while (runId) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events: temporal.api.history.v1.IHistoryEvent[] = history.events ?? [];
    runs.unshift({ runId, events, length: events.length });
    runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    if (runs.length > 10_000) throw new Error(`continue-as-new chain of ${workflowId} longer than 10,000 runs`);
  }
  return runs;
}
