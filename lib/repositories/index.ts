/**
 * The repositories: one module per Postgres table (or per pair of tables written together),
 * the only place the project writes SQL (docs/architecture.md, "Postgres: one owner per
 * table"; `infra/check-sql.ts` fails `npm run lint` on a pg query anywhere else). Each
 * function takes the pool or a client inside the caller's transaction (`withTransaction`
 * in `lib/db.ts`) first, so that calls to several repositories compose atomically.
 *
 * Use as `import { repos } from '../lib/repositories'`, then `repos.runs.recordStep(pool, ...)`.
 */
import * as datasetFingerprints from './dataset-fingerprints';
import * as datasets from './datasets';
import * as dedupeSegments from './dedupe-segments';
import * as evalSets from './eval-sets';
import * as frameLabels from './frame-labels';
import * as frames from './frames';
import * as labelVideos from './label-videos';
import * as labelingAnnotations from './labeling-annotations';
import * as labelingProjects from './labeling-projects';
import * as labelingRuns from './labeling-runs';
import * as labelingTasks from './labeling-tasks';
import * as labels from './labels';
import * as modelEvaluations from './model-evaluations';
import * as models from './models';
import * as runs from './runs';
import * as videoLabels from './video-labels';
import * as videos from './videos';

export type { LabelVideo } from './label-videos';

export const repos = {
  labels,
  videos,
  videoLabels,
  frames,
  runs,
  labelVideos,
  datasets,
  datasetFingerprints,
  dedupeSegments,
  frameLabels,
  labelingProjects,
  labelingRuns,
  labelingTasks,
  labelingAnnotations,
  models,
  modelEvaluations,
  evalSets,
};
