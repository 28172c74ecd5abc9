/**
 * Activity factories, one per task queue. Workflows import the *types* below only.
 *
 * - {@link createVideoActivities}: the CPU video queue (catalog, frames, embeddings,
 *   dedupe, labelling, dataset, publish).
 * - {@link createTrainingActivities}: the GPU queue (teacher, student, evaluation).
 */
import type { ActivityDeps } from './common/deps';
import { createCatalogActivities } from './catalog/activities';
import { createDatasetActivities } from './dataset/activities';
import { createDedupeActivities } from './dedupe/activities';
import { createEmbeddingActivities } from './embeddings/activities';
import { createFrameActivities } from './frames/activities';
import { createLabelingActivities } from './labeling/activities';
import { createPublishActivities, createTrainingActivities } from './training/activities';

export { createTrainingActivities };

/** Every activity the CPU video worker serves. */
export function createVideoActivities(deps: ActivityDeps) {
  return {
    ...createCatalogActivities(deps),
    ...createFrameActivities(deps),
    ...createEmbeddingActivities(deps),
    ...createDedupeActivities(deps),
    ...createLabelingActivities(deps),
    ...createDatasetActivities(deps),
    ...createPublishActivities(deps),
  };
}

/** The video worker's activities, as workflows see them (type only). */
export type VideoActivities = ReturnType<typeof createVideoActivities>;
/** The training worker's activities, as workflows see them (type only). */
export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
