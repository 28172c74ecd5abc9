/**
 * Evaluation of a published student on its label's fixed evaluation set: the same frames
 * for every version, so the numbers compare. Needs TensorFlow.js (the training worker's
 * queue). Idempotent: an evaluation already recorded for (model, set version) is returned
 * as is.
 */
import { evaluationKey, ModelMismatchError, RegistryError, type EvalSetMetrics, type ModelEvaluation } from '../../contracts';
import { loadClassifier, readClassifierS3 } from '../../domain/classifier';
import { evaluate } from '../../domain/metrics';
import type { ActivityDeps } from '../../lib/deps';
import { getEvalSet } from './evalset';
import { currentEvalVersion, getEvaluation, recordEvaluation, resolveModel } from './registry';

/** Frames fetched and run per batch. */
const BATCH = 32;

/**
 * Evaluate `name@version`'s student on the label's evaluation set (`evalVersion`, default
 * the newest): per-frame probabilities of every frame, then frame-level and video-level
 * metrics ({@link evaluate}; a video's prediction is the argmax of its frames' mean
 * probabilities). Frames whose class the model does not have are left out and counted.
 * The probabilities go to S3 ({@link evaluationKey}), the metrics to `model_evaluations`.
 *
 * @param onProgress called after each batch with the frames done.
 * @throws RegistryError when the label has no evaluation set or the model is not registered.
 * @throws ModelMismatchError when none of the set's frames has a class the model knows.
 */
export async function evaluateOnEvalSet(
  deps: ActivityDeps,
  input: { name: string; version: number; evalVersion?: number },
  onProgress?: (done: number, of: number) => void,
): Promise<ModelEvaluation> {
  const { pool, store } = deps;
  const evalVersion = input.evalVersion ?? (await currentEvalVersion(pool, input.name));
  if (!evalVersion) throw new RegistryError(`label "${input.name}" has no fixed evaluation set (reelset evalset grow ${input.name} --videos ...)`);
  const done = await getEvaluation(pool, input.name, input.version, evalVersion);
  if (done) return done;
  const model = await resolveModel(pool, { label: input.name, version: input.version });
  if (!model.studentPrefix) throw new RegistryError(`${input.name}@${input.version} has no student model`);
  const set = (await getEvalSet(pool, input.name, evalVersion))!;
  const files = await readClassifierS3(store, model.studentPrefix);
  const labels = files.artifact.labels;
  const frames = set.frames.filter((f) => labels.includes(f.class));
  const skippedFrames = set.frames.length - frames.length;
  if (frames.length === 0)
    throw new ModelMismatchError(
      `${input.name}@${input.version} knows ${labels.join(', ')}; no frame of evaluation set v${evalVersion} has one of these classes`,
    );
  const clf = await loadClassifier(files, deps.config.REELSET_TF_BACKEND);
  const k = labels.length;
  const probs = new Float32Array(frames.length * k);
  try {
    for (let s = 0; s < frames.length; s += BATCH) {
      const batch = frames.slice(s, s + BATCH);
      const images = await Promise.all(
        batch.map(async (f) => {
          const b = await store.get(f.frameKey);
          if (!b) throw new RegistryError(`frame ${store.uri(f.frameKey)} of evaluation set ${input.name} v${evalVersion} is missing from the bucket`);
          return b;
        }),
      );
      probs.set((await clf.predict(images)).probs, s * k);
      onProgress?.(Math.min(frames.length, s + BATCH), frames.length);
    }
  } finally {
    clf.dispose();
  }
  const ev = evaluate({
    probs,
    numClasses: k,
    labels: Int32Array.from(frames.map((f) => labels.indexOf(f.class))),
    labelNames: labels,
    videoIds: frames.map((f) => f.videoId),
  });
  const metrics: EvalSetMetrics = { frames: ev.frames, videos: ev.videos, skippedFrames, aggregation: 'mean-probability' };
  const predictionsKey = evaluationKey(input.name, input.version, 'student', evalVersion);
  await store.putJson(predictionsKey, {
    model: `${input.name}@${input.version}`,
    evalVersion,
    labels,
    frames: frames.map((f, i) => ({ frameKey: f.frameKey, videoId: f.videoId, class: f.class, probs: Array.from(probs.subarray(i * k, (i + 1) * k)) })),
  });
  await recordEvaluation(pool, { name: input.name, version: input.version, role: 'student', evalVersion, metrics, predictionsKey });
  return (await getEvaluation(pool, input.name, input.version, evalVersion))!;
}
