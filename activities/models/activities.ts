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
  type GateDecision,
  type PromotionOutcome,
  type EvaluateSummary,
  type PublishSummary,
  type StepManifest,
  type StepResult,
} from '../../contracts';
import { Context } from '@temporalio/activity';
import { gateConfig } from '../../lib/config';
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { readStepManifest, runStep } from '../../lib/runs';
import { evaluateOnEvalSet } from './evaluate';
import { ensureScope } from './scope';
import { currentEvalVersion, gateDecision, productionVersion, promote, recordPublished } from './registry';

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
        const version = await withTransaction(pool, (c) => repos.models.allocateVersion(c, ds.name, input.workflowId));
        const models: PublishSummary['models'] = [];
        for (const [role, step] of [
          ['teacher', 'train'],
          ['student', 'distill'],
        ] as const) {
          const from = runModelPrefix(input.workflowId, step);
          const prefix = modelPrefix(ds.name, version, role);
          const copied = await store.copyPrefix(`${from}/`, `${prefix}/`);
          if (copied === 0) throw new MissingArtifactError(store.uri(`${from}/`), `${role} model (written by the ${step} step)`);
          await store.putJson(`${prefix}/labels.json`, { labels: ds.labels, embedding: ds.embedding, dataset: { name: ds.name, version: ds.version } });
          await store.putJson(`${prefix}/metrics.json`, evaluation[role]);
          await repos.models.insert(pool, {
            name: ds.name,
            version,
            role,
            workflowId: input.workflowId,
            dataset: { name: ds.name, version: ds.version },
            artifactPrefix: prefix,
            labels: ds.labels,
            metrics: evaluation[role] ?? {},
          });
          models.push({ role, name: ds.name, version, artifactPrefix: prefix });
        }
        await recordPublished(pool, ds.name, version, `workflow:${input.workflowId}`);
        const summary: PublishSummary = { models, evaluation };
        return { summary };
      });
    },

    /**
     * Automatic promotion (after {@link createModelEvaluationActivities}' `evaluateForPromotion`):
     * the gate compares the candidate with the production model on the label's fixed
     * evaluation set and, when it passes, promotes it (actor `workflow:<id>`). Held back:
     * nothing changes, and the decision says which rule held it back.
     *
     * @param input.expectedProduction the production version the evaluation compared against.
     * @throws PromotionConflictError when production changed since (another promotion won).
     */
    async promoteIfBetter(input: { workflowId: string; name: string; version: number; expectedProduction: number | null }): Promise<PromotionOutcome> {
      const res = await promote(pool, {
        name: input.name,
        version: input.version,
        actor: `workflow:${input.workflowId}`,
        reason: 'automatic promotion by the retrain workflow: the gate passed',
        expectedProduction: input.expectedProduction,
        gate: gateConfig(deps.config),
      });
      deps.logger.info({ model: `${input.name}@${input.version}`, promoted: res.promoted, reason: res.gate.reason }, 'promotion gate');
      return { decision: res.promoted ? 'promoted' : 'held-back', gate: res.gate, production: res.production };
    },
  };
}

/**
 * The registry's activities that run models (the training worker's queue: they need
 * TensorFlow.js).
 */
export function createModelEvaluationActivities(deps: ActivityDeps) {
  return {
    /**
     * Calibrate the candidate's out-of-scope gate (`scope.json`), then evaluate it and the
     * label's production model on the label's current fixed evaluation set (each once: a recorded evaluation is reused), heartbeating the frames
     * done. With no evaluation set nothing is evaluated (the gate then holds the candidate
     * back and says so).
     *
     * @returns the set version (null: none), the production version compared against, and the gate's preview.
     */
    async evaluateForPromotion(input: {
      name: string;
      version: number;
    }): Promise<{ evalVersion: number | null; production: number | null; gate: GateDecision }> {
      const { pool } = deps;
      const evalVersion = await currentEvalVersion(pool, input.name);
      const production = await productionVersion(pool, input.name);
      // The candidate's out-of-scope gate (scope.json), so predict can answer `unknown`.
      // Best effort: the gate does not depend on it, and a dataset without frames to calibrate on must not fail the run.
      await ensureScope(deps, input.name, input.version, (phase, done) => Context.current().heartbeat({ phase: `scope ${phase}`, done }));
      if (evalVersion) {
        const beat = (phase: string) => (done: number, of: number) => Context.current().heartbeat({ phase, done, of });
        await evaluateOnEvalSet(deps, { name: input.name, version: input.version, evalVersion }, beat(`candidate v${input.version}`));
        if (production !== null && production !== input.version) {
          await evaluateOnEvalSet(deps, { name: input.name, version: production, evalVersion }, beat(`production v${production}`));
        }
      }
      return { evalVersion, production, gate: await gateDecision(pool, input.name, input.version, gateConfig(deps.config)) };
    },
  };
}
