/**
 * The model registry: publishing a run's teacher and student as versioned artifacts in
 * S3 and rows in Postgres. Runs on the CPU queue: it only copies files and writes rows.
 */
import {
  modelPrefix,
  MissingArtifactError,
  runModelPrefix,
  type DatasetManifest,
  type DatasetStepManifest,
  type EvaluateSummary,
  type PublishSummary,
  type StepManifest,
  type StepResult,
} from '../../contracts';
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { readStepManifest, runStep } from '../../lib/runs';

/** Model registry activities (CPU video task queue). */
export function createModelActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * Step 10, publish: copy teacher and student (every file of the run's model, plus
     * labels.json and metrics.json) to `models/<name>/v<version>/<role>/` and register
     * them in the `models` table as candidates. The version is allocated once per run
     * (a retried attempt gets the same one); copies and rows are idempotent.
     *
     * @throws MissingArtifactError when the dataset, evaluation or a model is not where the run's manifests say.
     */
    async publishModels(input: { workflowId: string }): Promise<StepResult<PublishSummary>> {
      return runStep(deps, input.workflowId, 'publish', async () => {
        const step = await readStepManifest<DatasetStepManifest>(store, input.workflowId, 'dataset');
        const ds = await store.getJson<DatasetManifest>(step.summary.datasetKey);
        if (!ds) throw new MissingArtifactError(store.uri(step.summary.datasetKey), 'dataset manifest');
        const evaluation = (await readStepManifest<StepManifest<EvaluateSummary>>(store, input.workflowId, 'evaluate')).summary;
        const version = await withTransaction(pool, async (c) => {
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`model:${ds.name}`]);
          const existing = await c.query<{ version: number }>('SELECT version FROM models WHERE workflow_id = $1 LIMIT 1', [input.workflowId]);
          if (existing.rows[0]) return existing.rows[0].version;
          const next = await c.query<{ v: number }>('SELECT coalesce(max(version), 0) + 1 AS v FROM models WHERE name = $1', [ds.name]);
          return next.rows[0]!.v;
        });
        const models: PublishSummary['models'] = [];
        for (const [role, step] of [['teacher', 'train'], ['student', 'distill']] as const) {
          const from = runModelPrefix(input.workflowId, step);
          const prefix = modelPrefix(ds.name, version, role);
          const copied = await store.copyPrefix(`${from}/`, `${prefix}/`);
          if (copied === 0) throw new MissingArtifactError(store.uri(`${from}/`), `${role} model (written by the ${step} step)`);
          await store.putJson(`${prefix}/labels.json`, { labels: ds.labels, embedding: ds.embedding, dataset: { name: ds.name, version: ds.version } });
          await store.putJson(`${prefix}/metrics.json`, evaluation[role]);
          await pool.query(
            `INSERT INTO models (name, version, role, workflow_id, dataset_name, dataset_version, artifact_prefix, labels, metrics)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (workflow_id, role) DO NOTHING`,
            [ds.name, version, role, input.workflowId, ds.name, ds.version, prefix, ds.labels, JSON.stringify(evaluation[role] ?? {})],
          );
          models.push({ role, name: ds.name, version, artifactPrefix: prefix });
        }
        const summary: PublishSummary = { models, evaluation };
        return { summary };
      });
    },
  };
}
