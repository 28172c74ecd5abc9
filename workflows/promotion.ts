/**
 * Automatic promotion, for the workflows that publish models (the nightly retrain): the
 * candidate and the production model are evaluated on the label's fixed evaluation set
 * (training queue), then the gate decides and promotes under the registry's lock (video
 * queue). A promotion that loses a race (`PromotionConflictError`: production changed
 * between the evaluation and the promotion) is evaluated again against the new
 * production model, at most three times.
 */
import { log, proxyActivities } from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import { failureOf, long, SHORT, type PromotionOutcome } from '../contracts';

/** Options of {@link promotionStep}. */
export interface PromotionStepOptions {
  heartbeatTimeoutS: number;
  gpuTaskQueue: string;
  /** Incremented for every activity scheduled (the run's cost). */
  counter?: { n: number };
}

/**
 * Gate and (maybe) promote `name@version`; returns the decision with every rule the gate
 * checked and, when held back, which rule held it back.
 *
 * @throws PromotionConflictError after three lost races in a row.
 */
export async function promotionStep(workflowId: string, name: string, version: number, opts: PromotionStepOptions): Promise<PromotionOutcome> {
  const gpu = proxyActivities<TrainingActivities>(long(opts.heartbeatTimeoutS, '1 hour', opts.gpuTaskQueue));
  const cpu = proxyActivities<VideoActivities>(SHORT);
  for (let attempt = 1; ; attempt++) {
    if (opts.counter) opts.counter.n += 2;
    const ev = await gpu.evaluateForPromotion({ name, version });
    try {
      const out = await cpu.promoteIfBetter({ workflowId, name, version, expectedProduction: ev.production });
      log.info('promotion gate', { model: `${name}@${version}`, decision: out.decision, reason: out.gate.reason });
      return out;
    } catch (err) {
      if (failureOf(err).type !== 'PromotionConflictError' || attempt >= 3) throw err;
      log.warn('production changed during the promotion; comparing again', { model: `${name}@${version}`, attempt });
    }
  }
}
