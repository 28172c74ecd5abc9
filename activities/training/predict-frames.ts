/**
 * Model pre-annotations for human labelling: the label's published student (one image
 * model: frame in, class probabilities out) predicts the run's representatives, and the predictions go to S3 for the labelling activities to
 * read (the labelling domain never loads a model).
 */
import { Context } from '@temporalio/activity';
import { predictionsKey, type DedupeStepManifest, type ModelArtifact, type PredictionsFile, type PredictionsSummary } from '../../contracts';
import { preparationOf } from '../../lib/backbone/model';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { readStepManifest } from '../../lib/runs';
import { fetchFrames } from './data';
import { predictImages } from './predict';
import type { SerializedModel } from './serialize';

/**
 * Top class and margin per row of an `n * k` probability matrix.
 *
 * @returns per row: the index of the most probable class, its probability, and its lead over the runner-up (0..1).
 */
export function topAndMargin(probs: Float32Array, k: number): Array<{ index: number; score: number; margin: number }> {
  const out: Array<{ index: number; score: number; margin: number }> = [];
  for (let i = 0; i < probs.length / k; i++) {
    let best = -1;
    let p1 = -Infinity;
    let p2 = -Infinity;
    for (let j = 0; j < k; j++) {
      const p = probs[i * k + j]!;
      if (p > p1) {
        p2 = p1;
        p1 = p;
        best = j;
      } else if (p > p2) p2 = p;
    }
    out.push({ index: best, score: p1, margin: k > 1 ? p1 - p2 : 1 });
  }
  return out;
}

/** Prediction activities (GPU queue, beside training: they load published models). */
export function createPredictionActivities(deps: ActivityDeps) {
  const { store, pool } = deps;
  return {
    /**
     * Predict the run's representatives (those the dedupe step sends on to labelling, and
     * those seen before) with the label's published student (the production one, else the
     * newest candidate) on their frames, and write `runs/<run>/label/predictions.json`: per
     * frame key, the predicted label, its probability and the margin to the runner-up.
     * Nothing is written (a `note` says why) when the label has no model yet, or when its
     * model is not an image model (a model published before `artifact.json`). Models of
     * either backbone format predict (their `artifact.json` says how to prepare frames).
     * Idempotent: an existing file is returned.
     */
    async predictFrames(input: { workflowId: string; label: string }): Promise<PredictionsSummary> {
      const key = predictionsKey(input.workflowId);
      const existing = await store.getJson<PredictionsFile>(key);
      if (existing)
        return {
          model: { name: existing.model.name, version: existing.model.version, role: existing.model.role },
          frames: Object.keys(existing.frames).length,
          predictionsKey: key,
        };
      const row = await repos.models.preAnnotator(pool, input.label);
      if (!row) return { model: null, frames: 0, predictionsKey: null, note: `no published model for "${input.label}" yet` };
      const [json, weights, art] = await Promise.all([
        store.get(`${row.artifact_prefix}/model.json`),
        store.get(`${row.artifact_prefix}/weights.bin`),
        store.getJson<ModelArtifact>(`${row.artifact_prefix}/artifact.json`),
      ]);
      const name = `model ${row.name} v${row.version} (${row.role})`;
      if (!json || !weights) return { model: null, frames: 0, predictionsKey: null, note: `${name} has missing files under ${row.artifact_prefix}/` };
      if (!art || art.input.kind !== 'image') {
        return {
          model: null,
          frames: 0,
          predictionsKey: null,
          note: `${name} is not an image model (published before artifact.json?): retrain the label for pre-annotations`,
        };
      }
      const dedupe = await readStepManifest<DedupeStepManifest>(store, input.workflowId, 'dedupe');
      const rows = dedupe.clusters.filter((c) => c.toLabel || c.seenAs !== undefined).map((c) => c.representative);
      const ctx = Context.current();
      ctx.heartbeat({ done: 0, of: rows.length });
      const model: SerializedModel = { modelJson: json.toString('utf8'), weights };
      const probs = await predictImages(
        model,
        preparationOf(art.input),
        (s, e) => fetchFrames(store, rows.slice(s, e)),
        rows.length,
        (done) => ctx.heartbeat({ done, of: rows.length }),
      );
      const top = topAndMargin(probs, art.labels.length);
      const file: PredictionsFile = {
        model: { name: row.name, version: row.version, role: row.role, artifactPrefix: row.artifact_prefix },
        labels: art.labels,
        frames: Object.fromEntries(
          rows.map((k, i) => [k, { label: art.labels[top[i]!.index]!, score: Number(top[i]!.score.toFixed(5)), margin: Number(top[i]!.margin.toFixed(5)) }]),
        ),
      };
      await store.putJson(key, file);
      return { model: { name: row.name, version: row.version, role: row.role }, frames: rows.length, predictionsKey: key };
    },
  };
}
