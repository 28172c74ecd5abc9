/**
 * Model pre-annotations for human labelling: the label's published model predicts the
 * run's representatives, and the predictions go to S3 for the labelling activities to
 * read (the labelling domain never loads a model).
 */
import { Context } from '@temporalio/activity';
import {
  embeddingModelKey,
  predictionsKey,
  type DedupeStepManifest,
  type EmbeddingModelId,
  type EmbedStepManifest,
  type PredictionsFile,
  type PredictionsSummary,
} from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { readStepManifest } from '../../lib/runs';
import { loadRunVectors } from '../../lib/vectors';
import { predict } from './predict';
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
     * those seen before) with the label's published teacher (the production one, else the
     * newest candidate) and write `runs/<run>/label/predictions.json`: per frame key, the
     * predicted label, its probability and the margin to the runner-up. Nothing is
     * written when the label has no model yet, or when its model was trained on another
     * embedding. Idempotent: an existing file is returned.
     */
    async predictFrames(input: { workflowId: string; label: string }): Promise<PredictionsSummary> {
      const key = predictionsKey(input.workflowId);
      const existing = await store.getJson<PredictionsFile>(key);
      if (existing) return { model: { name: existing.model.name, version: existing.model.version, role: existing.model.role }, frames: Object.keys(existing.frames).length, predictionsKey: key };
      const m = await pool.query<{ name: string; version: number; role: string; artifact_prefix: string }>(
        `SELECT name, version, role, artifact_prefix FROM models WHERE name = $1 AND role = 'teacher' AND stage <> 'archived'
         ORDER BY (stage = 'production') DESC, version DESC LIMIT 1`,
        [input.label],
      );
      const row = m.rows[0];
      if (!row) return { model: null, frames: 0, predictionsKey: null, note: `no published model for "${input.label}" yet` };
      const [json, weights, meta] = await Promise.all([
        store.get(`${row.artifact_prefix}/model.json`),
        store.get(`${row.artifact_prefix}/weights.bin`),
        store.getJson<{ labels: string[]; embedding: EmbeddingModelId }>(`${row.artifact_prefix}/labels.json`),
      ]);
      if (!json || !weights || !meta) return { model: null, frames: 0, predictionsKey: null, note: `model ${row.name} v${row.version} has missing files under ${row.artifact_prefix}/` };
      const embed = await readStepManifest<EmbedStepManifest>(store, input.workflowId, 'embed');
      if (embeddingModelKey(meta.embedding) !== embeddingModelKey(embed.model)) {
        return { model: null, frames: 0, predictionsKey: null, note: `model ${row.name} v${row.version} was trained on another embedding (${embeddingModelKey(meta.embedding)})` };
      }
      const dedupe = await readStepManifest<DedupeStepManifest>(store, input.workflowId, 'dedupe');
      const keys = dedupe.clusters.filter((c) => c.toLabel || c.seenAs !== undefined).map((c) => c.representative);
      const vectors = await loadRunVectors(store, embed);
      const dim = vectors.dim;
      const rows = keys.filter((k) => vectors.rowOf.has(k));
      const features = new Float32Array(rows.length * dim);
      rows.forEach((k, i) => features.set(vectors.vectors.subarray(vectors.rowOf.get(k)! * dim, (vectors.rowOf.get(k)! + 1) * dim), i * dim));
      Context.current().heartbeat({ frames: rows.length });
      const model: SerializedModel = { modelJson: json.toString('utf8'), weights };
      const probs = await predict(model, features, dim);
      const top = topAndMargin(probs, meta.labels.length);
      const file: PredictionsFile = {
        model: { name: row.name, version: row.version, role: row.role, artifactPrefix: row.artifact_prefix },
        labels: meta.labels,
        frames: Object.fromEntries(rows.map((k, i) => [k, { label: meta.labels[top[i]!.index]!, score: Number(top[i]!.score.toFixed(5)), margin: Number(top[i]!.margin.toFixed(5)) }])),
      };
      await store.putJson(key, file);
      return { model: { name: row.name, version: row.version, role: row.role }, frames: rows.length, predictionsKey: key };
    },
  };
}
