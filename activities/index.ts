/**
 * Activity factories, one per task queue. Workflows import the *types* below only.
 *
 * - {@link createVideoActivities}: the CPU video queue (catalog, frames, embeddings,
 *   dedupe, labelling, dataset, model registry, the retrain's plan and label dataset,
 *   run reports).
 * - {@link createTrainingActivities}: the GPU queue (teacher, student, evaluation).
 *
 * Each domain folder imports only `contracts/` and `lib/`, never another domain.
 */
import type { ActivityDeps } from '../lib/deps';
import { createCatalogActivities } from './catalog/activities';
import { createCatalogBackfillActivities } from './catalog/backfill';
import { createRetrainActivities } from './catalog/retrain';
import { createDatasetActivities } from './dataset/activities';
import { createLabelDatasetActivities } from './dataset/label-dataset';
import { createDedupeActivities } from './dedupe/activities';
import { createEmbeddingActivities } from './embeddings/activities';
import { createFrameActivities } from './frames/activities';
import { createFrameBackfillActivities } from './frames/backfill';
import { createLabelingActivities } from './labeling/activities';
import { createModelActivities, createModelEvaluationActivities } from './models/activities';
import { createBatchPredictActivities } from './models/batch';
import { createTrainingActivities as createTrainingDomainActivities } from './training/activities';
import { createReportActivities } from './reports/activities';

/** Every activity the training worker (GPU queue) serves: training, and the registry's evaluations on the fixed set. */
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
    ...createCatalogActivities(deps),
    ...createCatalogBackfillActivities(deps),
    ...createFrameActivities(deps),
    ...createFrameBackfillActivities(deps),
    ...createEmbeddingActivities(deps),
    ...createDedupeActivities(deps),
    ...createLabelingActivities(deps),
    ...createDatasetActivities(deps),
    ...createModelActivities(deps),
    planBatchPredict: createBatchPredictActivities(deps).planBatchPredict,
    ...createRetrainActivities(deps),
    ...createLabelDatasetActivities(deps),
    ...createReportActivities(deps),
  };
}

/** The video worker's activities, as workflows see them (type only). */
export type VideoActivities = ReturnType<typeof createVideoActivities>;
/** The training worker's activities, as workflows see them (type only). */
export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
