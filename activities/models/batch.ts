/**
 * Batch predict: a published student classifies a selection of the catalog; every frame's
 * prediction is recorded as a `model` label in `frame_labels` (with its probability as the
 * confidence) and every video's aggregated result goes to the run's predictions file.
 */

/** The batch's model and videos, as `planBatchPredict` resolved them. */
export interface BatchPlan {
  model: { name: string; version: number; stage: string; studentPrefix: string };
  videoIds: string[];
}
