/**
 * Calibration of a published student's out-of-scope gate (`domain/scope.ts`): reference
 * features of its dataset's training frames and a threshold set on in-scope frames the
 * references do not hold; written as `scope.json` beside the model, so `reelset predict`
 * (from the registry or from a copied model directory) applies it with no service.
 */
import { DatasetError, MissingArtifactError, RegistryError, type DatasetManifest } from '../../contracts';
import { loadClassifier, readClassifierS3, type ImageClassifier } from '../../domain/classifier';
import { centred, encodeReferences, logSumExp, meanRow, nearestSimilarity, quantile, type ScopeFile } from '../../domain/scope';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';
import { evenlySpaced } from './evalset';
import { resolveModel } from './registry';

/** Options of {@link calibrateScope}. */
export interface CalibrateOptions {
  name: string;
  version: number;
  /** Share of in-scope frames the gate may reject (default 0.05; split evenly between the nearest-neighbour and the ImageNet rule when the student has an ImageNet head). */
  quantile?: number;
  /** Most reference frames kept (default 400), evenly spread over the training frames. */
  maxReferences?: number;
  /** Recompute even when `scope.json` exists. */
  force?: boolean;
}

/** Features (`keys.length * dim`) and, where the student has an ImageNet head, its logits (`keys.length * 1000`, else empty). */
async function featuresOf(
  deps: ActivityDeps,
  clf: ImageClassifier,
  keys: string[],
  onProgress?: (done: number) => void,
): Promise<{ features: Float32Array; dim: number; imagenetLogits: Float32Array }> {
  const parts: Float32Array[] = [];
  const logits: Float32Array[] = [];
  let dim = 0;
  for (let s = 0; s < keys.length; s += 32) {
    const images = await Promise.all(
      keys.slice(s, s + 32).map(async (k) => {
        const b = await deps.store.get(k);
        if (!b) throw new MissingArtifactError(deps.store.uri(k), 'dataset frame');
        return b;
      }),
    );
    const p = await clf.predict(images);
    dim = p.featureDim;
    parts.push(p.features);
    logits.push(p.imagenetLogits);
    onProgress?.(Math.min(keys.length, s + 32));
  }
  return { features: concat(parts), dim, imagenetLogits: concat(logits) };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Write `scope.json` for `name@version`'s student (kept when there already is one, unless
 * `force`).
 *
 * @returns the scope file's summary (without the reference features).
 * @throws RegistryError when the model is unknown; DatasetError when its dataset has no training frame.
 */
export async function calibrateScope(
  deps: ActivityDeps,
  opts: CalibrateOptions,
  onProgress?: (phase: string, done: number) => void,
): Promise<Omit<ScopeFile, 'references'> & { references: number; key: string }> {
  const { pool, store } = deps;
  const model = await resolveModel(pool, { label: opts.name, version: opts.version });
  if (!model.studentPrefix) throw new RegistryError(`${opts.name}@${opts.version} has no student model`);
  const key = `${model.studentPrefix}/scope.json`;
  const summary = (s: ScopeFile) => ({ ...s, references: s.references.frameKeys.length, key });
  if (!opts.force) {
    const have = await store.getJson<ScopeFile>(key);
    if (have) return summary(have);
  }
  const manifestKey = await repos.datasets.manifestKeyOf(pool, model.dataset.name, model.dataset.version);
  const manifest = manifestKey ? await store.getJson<DatasetManifest>(manifestKey) : undefined;
  if (!manifest) throw new MissingArtifactError(`dataset ${model.dataset.name} v${model.dataset.version}`, 'dataset manifest of the model');
  const train = manifest.frames.filter((f) => f.split === 'train');
  if (train.length === 0) throw new DatasetError(`dataset ${model.dataset.name} v${model.dataset.version} has no training frame to take references from`);
  const refs = evenlySpaced(train.length, opts.maxReferences ?? 400).map((i) => train[i]!);
  const val = manifest.frames.filter((f) => f.split === 'validation');
  const q = opts.quantile ?? 0.05;
  const clf = await loadClassifier(await readClassifierS3(store, model.studentPrefix), deps.config.REELSET_TF_BACKEND);
  try {
    const raw = await featuresOf(
      deps,
      clf,
      refs.map((f) => f.key),
      (d) => onProgress?.('references', d),
    );
    const center = meanRow(raw.features, raw.dim);
    const r = { features: centred(raw.features, center, raw.dim), dim: raw.dim };
    let scores: Float32Array;
    let calibration: ScopeFile['calibration'];
    // The in-scope frames' ImageNet logits: the validation frames', or the references' own
    // (the ImageNet head is not trained on them, so they are not favoured).
    let logits = raw.imagenetLogits;
    if (val.length >= 10) {
      const v = await featuresOf(
        deps,
        clf,
        evenlySpaced(val.length, 400).map((i) => val[i]!.key),
        (d) => onProgress?.('validation', d),
      );
      scores = nearestSimilarity(centred(v.features, center, r.dim), r.features, r.dim);
      logits = v.imagenetLogits;
      calibration = 'validation';
    } else {
      const videos = refs.map((f) => f.videoId);
      // NaN: a reference with no other video to compare against. (With two references the
      // centred features are opposite, both scores -1, and the gate lets everything through.)
      scores = nearestSimilarity(r.features, r.features, r.dim, { query: videos, refs: videos }).filter((s) => !Number.isNaN(s));
      calibration = 'leave-one-video-out';
    }
    if (scores.length === 0)
      throw new DatasetError(
        `dataset ${model.dataset.name} v${model.dataset.version}: no in-scope frame to set the out-of-scope threshold on (one training video, no validation frame)`,
      );
    // Two rules share the quantile: each rejects about q/2 of the in-scope frames.
    const energy = logits.length > 0 ? logSumExp(logits, 1000) : null;
    const qEach = energy ? q / 2 : q;
    const scope: ScopeFile = {
      format: 'reelset-scope/1',
      k: 1,
      threshold: quantile(scores, qEach),
      quantile: q,
      calibration,
      calibrationFrames: scores.length,
      dim: r.dim,
      center: encodeReferences(center),
      references: { frameKeys: refs.map((f) => f.key), videoIds: refs.map((f) => f.videoId), features: encodeReferences(r.features) },
      ...(energy ? { imagenet: { score: 'logsumexp' as const, threshold: quantile(energy, qEach), quantile: qEach } } : {}),
    };
    await store.putJson(key, scope);
    return summary(scope);
  } finally {
    clf.dispose();
  }
}

/** What {@link ensureScope} did: the scope file's summary, or why there is none. */
export type ScopeOutcome =
  | { ok: true; key: string; threshold: number; calibration: ScopeFile['calibration']; calibrationFrames: number; references: number }
  | { ok: false; error: { type: string; message: string } };

/**
 * Make sure `name@version`'s student has `scope.json` before (or right after) it goes
 * into production: {@link calibrateScope} without `force`, so a calibrated version keeps
 * its file and one without gets it. Every promotion path calls it: the retrain's
 * `evaluateForPromotion`, `reelset models promote` and `reelset models rollback`.
 *
 * Best effort: it never throws. A model that cannot be calibrated (a dataset with one
 * training video and no validation frame, a missing manifest) is still promotable, and
 * predict then applies only the flat-frame rule; the failure is logged as a warning and
 * returned, so the caller can say so.
 *
 * @param onProgress as {@link calibrateScope}'s (a heartbeat in an activity).
 * @returns `ok: true` with the file's key and threshold, or `ok: false` with the error's type and message.
 */
export async function ensureScope(
  deps: ActivityDeps,
  name: string,
  version: number,
  onProgress?: (phase: string, done: number) => void,
): Promise<ScopeOutcome> {
  try {
    const s = await calibrateScope(deps, { name, version }, onProgress);
    return { ok: true, key: s.key, threshold: s.threshold, calibration: s.calibration, calibrationFrames: s.calibrationFrames, references: s.references };
  } catch (err) {
    const e = err instanceof Error ? { type: err.name, message: err.message } : { type: 'Error', message: String(err) };
    deps.logger.warn({ model: `${name}@${version}`, err: e.message }, 'out-of-scope gate not calibrated');
    return { ok: false, error: e };
  }
}
