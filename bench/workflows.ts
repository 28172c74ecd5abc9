/**
 * Workflows of the retrain benchmark: reelset's, plus the baseline it is compared with.
 * Deterministic; activities as types only.
 */
import { proxyActivities } from '@temporalio/workflow';
import { SHORT } from '../contracts';

export * from '../workflows';

/** Baseline of `bench/retrain-noop.ts`: the cheapest useful workflow, one activity that does nothing. */
export async function oneActivityWorkflow(): Promise<void> {
  const { benchNoop } = proxyActivities<{ benchNoop(): Promise<void> }>(SHORT);
  await benchNoop();
}
