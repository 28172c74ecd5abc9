/**
 * Activity factories, one per task queue. Workflows import the *types* below only.
 *
 * - {@link createVideoActivities}: the CPU video queue (run bookkeeping and the retrain's
 *   plan, catalog, frames, embeddings, dedupe, labelling, dataset, model registry, run
 *   reports).
 * - {@link createTrainingActivities}: the GPU queue (teacher, student, evaluation, batch
 *   predict's model step).
 *
 * Each domain defines its activities in its `activities.ts` and offers its public surface
 * in its `index.ts`; a domain imports only `contracts/`, `lib/` and `domain/`, never another
 * domain.
 */
import type { ActivityDeps } from '../lib/deps';
import { createCatalogActivities } from './catalog';
import { createDatasetActivities } from './dataset';
import { createDedupeActivities } from './dedupe';
import { createEmbeddingActivities } from './embeddings';
import { createFrameActivities } from './frames';
import { createLabelingActivities } from './labeling';
import { createBatchPredictActivities, createModelActivities, createModelEvaluationActivities } from './models';
import { createReportActivities } from './reports';
import { createRunActivities } from './runs';
import { createTrainingActivities as createTrainingDomainActivities } from './training';

/** Every activity the training worker (GPU queue) serves: training, the registry's evaluations on the fixed set, batch predict's model step. */
export function createTrainingActivities(deps: ActivityDeps) {
  return {
    ...createTrainingDomainActivities(deps),
    ...createModelEvaluationActivities(deps),
    predictVideos: createBatchPredictActivities(deps).predictVideos,
  };
}

/** Every activity the CPU video worker serves. */
export function createVideoActivities(deps: ActivityDeps) {
  return {
    ...createRunActivities(deps),
    ...createCatalogActivities(deps),
    ...createFrameActivities(deps),
    ...createEmbeddingActivities(deps),
    ...createDedupeActivities(deps),
    ...createLabelingActivities(deps),
    ...createDatasetActivities(deps),
    ...createModelActivities(deps),
    planBatchPredict: createBatchPredictActivities(deps).planBatchPredict,
    ...createReportActivities(deps),
  };
}

/** The video worker's activities, as workflows see them (type only). */
export type VideoActivities = ReturnType<typeof createVideoActivities>;
/** The training worker's activities, as workflows see them (type only). */
export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
