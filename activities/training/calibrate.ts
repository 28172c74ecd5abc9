/**
 * Video-level decision calibration: per-class offsets added to a classifier's logits so
 * that the video's class (the argmax of the mean probability of its frames, as predict
 * and the evaluation decide) has the best balanced accuracy on videos the classifier did
 * not train on.
 *
 * Why: with weak (video-level) labels, many frames of a positive video do not show the
 * label (titles, transitions, other shots), so a good frame classifier's mean probability
 * over a positive video sits well below that of its clean frames, while negative videos
 * stay low: the decision at equal weights misses positive videos that the scores rank
 * correctly. The offsets move the decision to where the videos separate; they change no
 * ranking. Chosen on out-of-fold predictions (each training video scored by a model that
 * did not train on it: cross-fitting), never on the frames a model trained on. This is
 * post-hoc logit adjustment (Menon et al. 2021, "Long-tail learning via logit
 * adjustment", ICLR) with the adjustment fitted to the balanced error on held-out videos
 * instead of derived from class priors.
 */
import { InvalidInputError } from '../../contracts';

/** Options of {@link videoLogitOffsets}. */
export interface OffsetSearch {
  /** Offsets tried per class, in nats (default -4..4 in steps of 0.1). */
  grid?: number[];
  /** Coordinate-ascent passes over the classes (default 2). */
  passes?: number;
  /** Class whose offset stays 0 (the reference; default the last, `other` in reelset's datasets). */
  reference?: number;
}

/** The offsets chosen and what they gave on the calibration videos. */
export interface VideoCalibration {
  /** `k` offsets in nats, added to the logits (the reference class's is 0). */
  offsets: number[];
  /** Video balanced accuracy of the calibration videos without offsets, and with them. */
  before: number;
  after: number;
  /** Calibration videos (out-of-fold) used. */
  videos: number;
}

const DEFAULT_GRID = Array.from({ length: 81 }, (_, i) => Math.round((i * 0.1 - 4) * 10) / 10);

/**
 * Mean recall over the classes present among the videos (balanced accuracy) when each
 * video's class is the argmax of the mean of its frames' `softmax(log p + offsets)`.
 *
 * @param logp `n * k` log-probabilities (or logits) of the frames.
 * @param videoOf per frame, the index of its video in `videoClass`.
 * @param videoClass per video, its true class.
 */
export function videoBalancedAccuracy(logp: Float32Array, k: number, videoOf: Int32Array, videoClass: Int32Array, offsets: ArrayLike<number>): number {
  const nv = videoClass.length;
  const sums = new Float64Array(nv * k);
  const counts = new Int32Array(nv);
  const z = new Float64Array(k);
  for (let i = 0; i < videoOf.length; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) {
      z[j] = logp[i * k + j]! + offsets[j]!;
      if (z[j]! > m) m = z[j]!;
    }
    let s = 0;
    for (let j = 0; j < k; j++) s += z[j] = Math.exp(z[j]! - m);
    const v = videoOf[i]!;
    for (let j = 0; j < k; j++) sums[v * k + j]! += z[j]! / s;
    counts[v]!++;
  }
  const right = new Float64Array(k);
  const total = new Float64Array(k);
  for (let v = 0; v < nv; v++) {
    if (!counts[v]) continue;
    let best = 0;
    for (let j = 1; j < k; j++) if (sums[v * k + j]! > sums[v * k + best]!) best = j;
    total[videoClass[v]!]!++;
    if (best === videoClass[v]) right[videoClass[v]!]!++;
  }
  let acc = 0;
  let present = 0;
  for (let j = 0; j < k; j++) {
    if (!total[j]) continue;
    acc += right[j]! / total[j]!;
    present++;
  }
  return present ? acc / present : NaN;
}

/**
 * Choose per-class logit offsets maximising the video balanced accuracy of out-of-fold
 * predictions, by coordinate ascent over a grid (the reference class stays at 0; among
 * equally good offsets the smallest in magnitude wins, so calibration moves a decision
 * only when the videos ask for it). Deterministic.
 *
 * @param probs `n * k` out-of-fold probabilities of frames of the calibration videos.
 * @param videoOf per frame, the index of its video in `videoClass`.
 * @param videoClass per video, its true class (a video's majority label).
 * @returns the offsets (all 0 when fewer than two classes have videos).
 * @throws InvalidInputError on inconsistent lengths or classes out of range.
 */
export function videoLogitOffsets(probs: Float32Array, k: number, videoOf: Int32Array, videoClass: Int32Array, opts: OffsetSearch = {}): VideoCalibration {
  const n = videoOf.length;
  if (probs.length !== n * k) throw new InvalidInputError(`probs has ${probs.length} values, expected ${n} frames x ${k} classes`);
  videoOf.forEach((v, i) => {
    if (v < 0 || v >= videoClass.length) throw new InvalidInputError(`frame ${i} points at video ${v}, not in [0, ${videoClass.length})`);
  });
  videoClass.forEach((c, v) => {
    if (c < 0 || c >= k) throw new InvalidInputError(`video ${v} has class ${c}, not in [0, ${k})`);
  });
  const grid = opts.grid ?? DEFAULT_GRID;
  const passes = opts.passes ?? 2;
  const reference = opts.reference ?? k - 1;
  const logp = new Float32Array(n * k);
  for (let i = 0; i < logp.length; i++) logp[i] = Math.log(Math.max(probs[i]!, 1e-7));
  const offsets = new Array<number>(k).fill(0);
  const before = videoBalancedAccuracy(logp, k, videoOf, videoClass, offsets);
  const videos = new Set(videoOf).size;
  if (new Set(videoClass).size < 2) return { offsets, before, after: before, videos };
  let best = before;
  for (let pass = 0; pass < passes; pass++) {
    let moved = false;
    for (let j = 0; j < k; j++) {
      if (j === reference) continue;
      let bestB = offsets[j]!;
      for (const b of grid) {
        const trial = offsets.slice();
        trial[j] = b;
        const s = videoBalancedAccuracy(logp, k, videoOf, videoClass, trial);
        if (s > best + 1e-12 || (Math.abs(s - best) <= 1e-12 && Math.abs(b) < Math.abs(bestB))) {
          best = s;
          bestB = b;
        }
      }
      if (bestB !== offsets[j]) moved = true;
      offsets[j] = bestB;
    }
    if (!moved) break;
  }
  return { offsets, before, after: best, videos };
}

/**
 * Apply logit offsets to probabilities: `softmax(log p + offsets)` per row.
 * @returns a new `n * k` array.
 */
export function shiftProbabilities(probs: Float32Array, k: number, offsets: ArrayLike<number>): Float32Array {
  const out = new Float32Array(probs.length);
  const z = new Float64Array(k);
  for (let o = 0; o < probs.length; o += k) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) {
      z[j] = Math.log(Math.max(probs[o + j]!, 1e-7)) + offsets[j]!;
      if (z[j]! > m) m = z[j]!;
    }
    let s = 0;
    for (let j = 0; j < k; j++) s += z[j] = Math.exp(z[j]! - m);
    for (let j = 0; j < k; j++) out[o + j] = z[j]! / s;
  }
  return out;
}
