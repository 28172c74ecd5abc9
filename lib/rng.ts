/**
 * Seeded pseudo-random numbers, so that training (initial weights, batch sampling,
 * dropout masks, CutMix boxes) is reproducible from a seed, and resumable: the stream
 * of epoch `e` is re-derived from `(seed, e)` instead of being carried over.
 */
import { InvalidInputError } from '../contracts';

/** A generator of uniform floats in [0, 1). */
export type Rng = () => number;

/**
 * Mulberry32 (Tommy Ettinger, 2017; public domain): a 32-bit state generator with period
 * 2^32, fast and good enough for sampling and initialisation (not cryptographic).
 *
 * @param seed any number; only its low 32 bits are used.
 * @returns a function returning uniform floats in [0, 1) with 32-bit resolution.
 */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derive an independent 32-bit seed from a base seed and a path of integers
 * (e.g. `deriveSeed(seed, STREAM_SAMPLING, epoch)`), by chaining the MurmurHash3 32-bit
 * finaliser (Appleby 2011). Deterministic; different paths give unrelated streams.
 *
 * @returns an unsigned 32-bit integer.
 */
export function deriveSeed(seed: number, ...path: number[]): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const p of path) {
    h = fmix32((h + Math.imul((p >>> 0) ^ 0x85ebca6b, 0xcc9e2d51)) >>> 0);
  }
  return fmix32(h);
}

function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform integer in [0, n). @throws InvalidInputError when n is not a positive integer. */
export function randInt(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new InvalidInputError(`randInt: n must be a positive integer, got ${n}`);
  return Math.floor(rng() * n);
}

/** Standard normal sample (Box-Muller transform, Box & Muller 1958). */
export function randNormal(rng: Rng): number {
  const u = 1 - rng(); // (0, 1]
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A permutation of 0..n-1 (Fisher-Yates shuffle, Durstenfeld's in-place variant). */
export function permutation(rng: Rng, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = p[i] as number;
    p[i] = p[j] as number;
    p[j] = t;
  }
  return p;
}

/**
 * A sampler that draws row indices with replacement, row i having probability
 * proportional to `1 / count(classes[i])`: every class present is drawn equally often
 * in expectation, whatever its frequency (class-balanced sampling).
 *
 * @param classes class index of each row, in [0, numClasses); rows with a negative class
 *   get zero probability (never drawn).
 * @param numClasses number of classes.
 * @returns `draw(rng, count)` giving `count` row indices (binary search on the cumulative weights).
 * @throws InvalidInputError when a class is >= numClasses or no row has a class.
 */
export function classBalancedSampler(classes: Int32Array, numClasses: number): (rng: Rng, count: number) => Int32Array {
  const counts = new Float64Array(numClasses);
  for (const c of classes) {
    if (c >= numClasses) throw new InvalidInputError(`class ${c} out of range [0, ${numClasses})`);
    if (c >= 0) counts[c] = (counts[c] as number) + 1;
  }
  const weights = new Float64Array(classes.length);
  classes.forEach((c, i) => {
    weights[i] = c >= 0 ? 1 / (counts[c] as number) : 0;
  });
  return weightedSampler(weights);
}

/**
 * A sampler drawing indices with replacement, index i with probability `weights[i] / sum(weights)`.
 *
 * @param weights non-negative weights, at least one positive.
 * @throws InvalidInputError on negative/non-finite weights or an all-zero vector.
 */
export function weightedSampler(weights: ArrayLike<number>): (rng: Rng, count: number) => Int32Array {
  const n = weights.length;
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i] as number;
    if (!(w >= 0) || !Number.isFinite(w)) throw new InvalidInputError(`weight ${i} is ${w}`);
    total += w;
    cdf[i] = total;
  }
  if (!(total > 0)) throw new InvalidInputError('no row has a positive sampling weight');
  return (rng, count) => {
    const out = new Int32Array(count);
    for (let k = 0; k < count; k++) {
      const u = rng() * total;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((cdf[mid] as number) > u) hi = mid;
        else lo = mid + 1;
      }
      out[k] = lo;
    }
    return out;
  };
}
