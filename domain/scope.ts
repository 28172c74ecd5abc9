/**
 * The out-of-scope gate: is a frame like anything the model was trained on? A frame's
 * score is its cosine similarity to the nearest of the model's reference frames in the
 * student's own feature space (its backbone's pooled features, L2-normalised): the deep
 * nearest-neighbour detector of Sun et al. 2022 ("Out-of-distribution detection with
 * deep nearest neighbors", ICML) with k = 1. Frames scoring below the threshold come
 * back as `unknown` instead of a class. The threshold is a low quantile of the scores of
 * in-scope frames the references do not contain (the dataset's validation videos, or each
 * training video scored against the others), so its cost on in-scope frames is set, not
 * guessed; its rejection of real out-of-scope frames is measured (docs/benchmarks.md#out-of-scope-gate).
 *
 * `scope.json` beside a published student holds the references and the threshold.
 *
 * A second score uses what the backbone's own ImageNet classifier knows (students of the
 * EfficientNet backbones give its logits as a second output): the log-sum-exp of the 1000
 * logits, the negative of the free energy of Liu et al. 2020 ("Energy-based
 * out-of-distribution detection", NeurIPS), higher for inputs like the network's training
 * images. A frame scoring below its threshold (also a quantile of in-scope frames) is out
 * of scope too. With both scores, each threshold takes half the quantile, so that together
 * they reject about the quantile of in-scope frames.
 *
 * A second rule needs no calibration: a frame with (almost) no structure, whose luma
 * standard deviation is below {@link MIN_LUMA_STD} (a black, white or flat-colour frame,
 * a fade), is out of scope whatever the features say: such frames sit close to the dark or
 * flat frames of many videos in feature space (measured: a black frame scores 0.93 against
 * a training set with dark visualiser frames), so the nearest-neighbour rule alone keeps them.
 */
import sharp from 'sharp';

/** Luma standard deviation (0-255, on a 64 x 64 greyscale copy) below which a frame is degenerate (out of scope). */
export const MIN_LUMA_STD = 6;

/**
 * The luma standard deviation of an encoded image (0-255), on a 64 x 64 greyscale copy.
 * @throws Error when sharp cannot decode the image.
 */
export async function lumaStd(image: Buffer): Promise<number> {
  const { data } = await sharp(image).rotate().greyscale().resize(64, 64, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  let s = 0;
  let q = 0;
  for (const v of data) {
    s += v;
    q += v * v;
  }
  const n = data.length;
  return Math.sqrt(Math.max(0, q / n - (s / n) ** 2));
}

/** `scope.json`: the references and threshold of a student's out-of-scope gate. */
export interface ScopeFile {
  format: 'reelset-scope/1';
  /** Nearest-neighbour count (1). */
  k: number;
  /** Cosine similarity below which a frame is `unknown`. */
  threshold: number;
  /** The quantile of in-scope scores the threshold was set at (e.g. 0.05: about 5% of in-scope frames rejected). */
  quantile: number;
  /** Where the in-scope scores came from: `validation` frames, or `leave-one-video-out` on training frames. */
  calibration: 'validation' | 'leave-one-video-out';
  /** In-scope frames scored to set the threshold. */
  calibrationFrames: number;
  dim: number;
  /**
   * Mean of the references' normalised features (base64 float32, `dim`): subtracted from
   * every feature before the cosine (then renormalised). MobileNetV2's pooled features are
   * all positive (after ReLU6), so raw cosines of unrelated frames are high (0.6-0.9 here);
   * centring on the references removes that shared component.
   */
  center: string;
  /** Reference frames (dataset training frames), and their features: base64 of `n * dim` float32 little-endian, centred rows L2-normalised. */
  references: { frameKeys: string[]; videoIds: string[]; features: string };
  /**
   * The ImageNet score's rule (absent for students of the first format, which have no
   * ImageNet head): `logsumexp` of the backbone's logits, out of scope below `threshold`,
   * the `quantile` of the in-scope frames' scores (half the file's `quantile`; the
   * nearest-neighbour `threshold` is then set at that half too).
   */
  imagenet?: { score: 'logsumexp'; threshold: number; quantile: number };
}

/** Log-sum-exp of each row of `n * classes` logits (the negative free energy, Liu et al. 2020). */
export function logSumExp(logits: Float32Array, classes: number): Float32Array {
  const n = logits.length / classes;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < classes; j++) m = Math.max(m, logits[i * classes + j]!);
    let s = 0;
    for (let j = 0; j < classes; j++) s += Math.exp(logits[i * classes + j]! - m);
    out[i] = m + Math.log(s);
  }
  return out;
}

function decode(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Rows of a scope file's reference features (centred, normalised). */
export function referenceMatrix(scope: ScopeFile): Float32Array {
  return decode(scope.references.features);
}

/** Mean row of `rows` (`dim` wide). */
export function meanRow(rows: Float32Array, dim: number): Float32Array {
  const n = rows.length / dim;
  const m = new Float32Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) m[d]! += rows[i * dim + d]! / n;
  return m;
}

/** Rows minus `center`, each L2-normalised (a zero row stays zero). */
export function centred(rows: Float32Array, center: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(rows.length);
  for (let o = 0; o < rows.length; o += dim) {
    let n = 0;
    for (let d = 0; d < dim; d++) {
      const v = rows[o + d]! - center[d]!;
      out[o + d] = v;
      n += v * v;
    }
    const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
    for (let d = 0; d < dim; d++) out[o + d]! *= inv;
  }
  return out;
}

/** Encode L2-normalised reference rows for a scope file. */
export function encodeReferences(features: Float32Array): string {
  return Buffer.from(features.buffer, features.byteOffset, features.byteLength).toString('base64');
}

/**
 * For each query row, the highest cosine similarity to a reference row (both L2-normalised,
 * `dim` wide), skipping references whose group equals the query's (leave-one-group-out:
 * a video scored against the other videos).
 *
 * @returns one score per query row in [-1, 1]; NaN when every reference was skipped (not
 *   -1, which is a real score: two centred references are exactly opposite).
 */
export function nearestSimilarity(queries: Float32Array, refs: Float32Array, dim: number, groups?: { query: string[]; refs: string[] }): Float32Array {
  const nq = queries.length / dim;
  const nr = refs.length / dim;
  const out = new Float32Array(nq).fill(NaN);
  for (let i = 0; i < nq; i++) {
    const qo = i * dim;
    let best = -Infinity;
    for (let j = 0; j < nr; j++) {
      if (groups && groups.query[i] === groups.refs[j]) continue;
      const ro = j * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += queries[qo + d]! * refs[ro + d]!;
      if (s > best) best = s;
    }
    out[i] = best === -Infinity ? NaN : best;
  }
  return out;
}

/** The q-quantile of values (linear interpolation between order statistics; Hyndman & Fan type 7, numpy's default). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const a = Array.from(values).sort((x, y) => x - y);
  if (a.length === 0) return NaN;
  const h = (a.length - 1) * q;
  const lo = Math.floor(h);
  return a[lo]! + (h - lo) * ((a[Math.min(lo + 1, a.length - 1)] ?? a[lo]!) - a[lo]!);
}

/** Why the gate rejected a frame: no structure (`degenerate`), unlike every reference frame (`far`), unlike what ImageNet's classifier knows (`unfamiliar`). */
export type OutOfScopeReason = 'degenerate' | 'far' | 'unfamiliar';

/**
 * Which rows the gate keeps, and why not. `scope` null: the nearest-neighbour and ImageNet
 * rules are skipped (no scope.json), the degenerate-frame rule still applies when
 * `lumaStds` is given. The ImageNet rule applies when the scope has one and `imagenetLogits` are given.
 *
 * @param lumaStds per row, {@link lumaStd} of its image (optional).
 * @param imagenetLogits `n * 1000` logits of the backbone's ImageNet classifier (optional).
 * @throws Error when the features' width is not the scope's.
 */
export function applyScope(
  scope: ScopeFile | null,
  features: Float32Array,
  dim: number,
  lumaStds?: number[],
  imagenetLogits?: Float32Array,
): { inScope: boolean[]; scores: Float32Array | null; imagenetScores: Float32Array | null; reasons: Array<OutOfScopeReason | null> } {
  const n = dim > 0 ? features.length / dim : (lumaStds?.length ?? 0);
  if (scope && dim !== scope.dim) throw new Error(`scope.json has ${scope.dim}-d references, the model gives ${dim}-d features`);
  const scores = scope ? nearestSimilarity(centred(features, decode(scope.center), dim), referenceMatrix(scope), dim) : null;
  const imagenetScores = scope?.imagenet && imagenetLogits && imagenetLogits.length === n * 1000 ? logSumExp(imagenetLogits, 1000) : null;
  const reasons = Array.from({ length: n }, (_, i): OutOfScopeReason | null => {
    if (lumaStds && lumaStds[i]! < MIN_LUMA_STD) return 'degenerate';
    if (scores && scope && scores[i]! < scope.threshold) return 'far';
    if (imagenetScores && scope?.imagenet && imagenetScores[i]! < scope.imagenet.threshold) return 'unfamiliar';
    return null;
  });
  return { inScope: reasons.map((r) => r === null), scores, imagenetScores, reasons };
}
