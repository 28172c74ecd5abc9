/**
 * The model registry: publishing a run's teacher and student as versioned artifacts in
 * S3 and rows in Postgres. Runs on the CPU queue: it only copies files and writes rows.
 */
import { Context } from '@temporalio/activity';
import {
  batchPredictionsKey,
  failureOf,
  MissingArtifactError,
  modelPrefix,
  parseModelRef,
  RegistryError,
  runModelPrefix,
  type BatchPredictResult,
  type BatchVideoPrediction,
  type DatasetManifest,
  type DatasetStepManifest,
  type EvaluateSummary,
  type GateDecision,
  type PromotionOutcome,
  type PublishSummary,
  type StepManifest,
  type StepResult,
  type VideoFramesManifest,
} from '../../contracts';
import { aggregateVideo, loadClassifier, readClassifierS3 } from '../../domain/classifier';
import { applyScope, lumaStd, type ScopeFile } from '../../domain/scope';
import { gateConfig } from '../../lib/config';
import { withTransaction } from '../../lib/db';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { readStepManifest, runStep } from '../../lib/runs';
import { type BatchPlan } from './batch';
import { evaluateOnEvalSet } from './evaluate';
import { currentEvalVersion, gateDecision, productionVersion, promote, recordPublished, resolveModel } from './registry';
import { ensureScope } from './scope';

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

/** Batch predict activities: `planBatchPredict` (video queue), `predictVideos` (training queue: it loads the model). */
export function createBatchPredictActivities(deps: ActivityDeps) {
  const { pool, store } = deps;
  return {
    /**
     * Resolve the model reference (the version is fixed here, so a promotion during the run
     * changes nothing), pick the videos (the given ids, else the catalog's videos of
     * `catalogLabel` or its descendants, else every video; sorted, at most `maxVideos`), and
     * record the run (`runs`, kind `batch-predict`).
     *
     * @throws RegistryError when the model does not exist; InvalidInputError... never: unknown video ids are reported by extraction.
     */
    async planBatchPredict(input: { workflowId: string; model: string; videoIds: string[]; catalogLabel?: string; maxVideos: number }): Promise<BatchPlan> {
      const m = await resolveModel(pool, parseModelRef(input.model));
      if (!m.studentPrefix) throw new RegistryError(`${m.name}@${m.version} has no student (image) model`);
      let ids = input.videoIds;
      if (ids.length === 0) {
        ids = await repos.videos.idsOfLabelTree(pool, input.catalogLabel ?? null, input.maxVideos);
      }
      ids = [...new Set(ids)].slice(0, input.maxVideos);
      await repos.runs.recordBatchPredict(pool, input.workflowId, m.name, { ...input, model: `${m.name}@${m.version}` });
      return { model: { name: m.name, version: m.version, stage: m.stage, studentPrefix: m.studentPrefix }, videoIds: ids };
    },

    /**
     * Classify the frames of each video (its frames manifest from the extraction), apply the
     * out-of-scope gate (scope.json when the model has one, and flat frames), aggregate each
     * video by the mean probability of its in-scope frames, upsert one `model` label per
     * in-scope frame (label = argmax, confidence = its probability; re-running updates the
     * same rows), and write the predictions file. Heartbeats after every video.
     */
    async predictVideos(input: {
      workflowId: string;
      plan: BatchPlan;
      videos: Array<{ videoId: string; manifestKey: string | null; error?: { type: string; message: string } }>;
    }): Promise<BatchPredictResult> {
      const ctx = Context.current();
      const { model } = input.plan;
      const files = await readClassifierS3(store, model.studentPrefix);
      const scope = (await store.getJson<ScopeFile>(`${model.studentPrefix}/scope.json`)) ?? null;
      const clf = await loadClassifier(files, deps.config.REELSET_TF_BACKEND);
      const labels = files.artifact.labels;
      const k = labels.length;
      const out: Array<BatchVideoPrediction & { frameResults: Array<{ key: string; timestampS: number; label: string; probabilities: number[] }> }> = [];
      let frameLabels = 0;
      try {
        for (const [n, v] of input.videos.entries()) {
          ctx.heartbeat({ done: n, of: input.videos.length, videoId: v.videoId });
          if (!v.manifestKey) {
            out.push({
              videoId: v.videoId,
              label: null,
              probabilities: {},
              frames: 0,
              unknownFrames: 0,
              ...(v.error ? { error: v.error } : {}),
              frameResults: [],
            });
            continue;
          }
          try {
            const manifest = await store.getJson<VideoFramesManifest>(v.manifestKey);
            if (!manifest) throw new RegistryError(`frames manifest ${store.uri(v.manifestKey)} is missing`);
            const frames = manifest.frames;
            const images = await Promise.all(frames.map(async (f) => (await store.get(f.key)) ?? Buffer.alloc(0)));
            const p = await clf.predict(images);
            const gate = applyScope(scope, p.features, p.featureDim, await Promise.all(images.map((b) => lumaStd(b))), p.imagenetLogits);
            const agg = aggregateVideo(p.probs, labels, gate.inScope);
            const frameResults = frames.map((f, i) => {
              const row = Array.from(p.probs.subarray(i * k, (i + 1) * k));
              const best = row.indexOf(Math.max(...row));
              return { key: f.key, timestampS: f.timestampS, label: gate.inScope[i] ? labels[best]! : 'unknown', probabilities: row };
            });
            const rows = frameResults.filter((f) => f.label !== 'unknown');
            if (rows.length) {
              // Only frames with a row in `frames` (a manifest reused from S3 may list frames whose rows were deleted).
              frameLabels += await repos.frameLabels.upsertModelLabels(
                pool,
                input.workflowId,
                rows.map((r) => ({ frameKey: r.key, label: r.label, confidence: Math.max(...r.probabilities) })),
              );
            }
            out.push({
              videoId: v.videoId,
              label: agg.label,
              probabilities: agg.probabilities,
              frames: agg.frames,
              unknownFrames: agg.unknownFrames,
              frameResults,
            });
          } catch (err) {
            out.push({ videoId: v.videoId, label: null, probabilities: {}, frames: 0, unknownFrames: 0, error: failureOf(err), frameResults: [] });
          }
        }
      } finally {
        clf.dispose();
      }
      const key = batchPredictionsKey(input.workflowId);
      await store.putJson(key, {
        model: `${model.name}@${model.version}`,
        labels,
        aggregation: 'mean-probability',
        scope: scope ? { threshold: scope.threshold } : null,
        videos: out,
      });
      const perLabel: Record<string, number> = {};
      for (const v of out) if (v.label) perLabel[v.label] = (perLabel[v.label] ?? 0) + 1;
      return {
        workflowId: input.workflowId,
        model: { name: model.name, version: model.version, stage: model.stage },
        videos: out.length,
        failed: out.filter((v) => v.label === null).length,
        perLabel,
        frameLabels,
        predictionsKey: key,
      };
    },
  };
}
