/**
 * Bootstrap confidence intervals over videos (issue 17): how sure a number measured on
 * a handful of videos is. Pure and deterministic (a seeded generator, no clock, no I/O),
 * so the promotion gate, benches and workflows share it.
 *
 * Method: the nonparametric bootstrap with the percentile interval (Efron & Tibshirani
 * 1993, "An Introduction to the Bootstrap", ch. 6 and ch. 13). The unit is the video: a
 * resample draws n videos with replacement from the n videos measured and recomputes the
 * statistic on them; frames are never resampled on their own, because the frames of a
 * video are not independent (they share its scene, its camera, its lighting). With
 * `strata` (by default the videos' true class for balanced accuracy) every stratum is
 * resampled on its own and keeps its size, as in the book's two-sample problem (ch. 8):
 * an evaluation set's class counts are chosen by whoever grew it, not drawn at random,
 * and a stratified resample never lacks a class.
 *
 * Degenerate resamples: a resample on which the statistic is undefined (it returns
 * `null` or NaN, e.g. balanced accuracy when, without strata, no video of a class was
 * drawn) is left out of the interval and counted in `degenerate`; the interval is taken
 * over the `used` others. That conditions on the resample being measurable, so a large
 * `degenerate` count is a sign to stratify (or to grow the set).
 */
import { InvalidInputError } from './failures';

/** Defaults of every bootstrap here: 2,000 resamples, a 95% interval, seed 17. */
export const BOOTSTRAP_DEFAULTS = { resamples: 2000, confidence: 0.95, seed: 17 } as const;

/** Options of {@link bootstrapInterval} and the helpers built on it. */
export interface BootstrapOptions {
  /** Resamples B, an integer >= 1 (default 2,000). The interval's ends move by about 1/sqrt(B) of its width between seeds. */
  resamples?: number;
  /** Two-sided coverage of the interval, in (0, 1) (default 0.95). */
  confidence?: number;
  /** Seed of the generator (default 17): the same data, options and seed give the same interval. */
  seed?: number;
  /**
   * Stratum of each unit (any integers, length n): each stratum is resampled with
   * replacement on its own and keeps its size. Omitted: the n units are resampled together.
   */
  strata?: ArrayLike<number>;
}

/** A percentile bootstrap interval and how it was made. */
export interface BootstrapInterval {
  /** The statistic on the units as measured (not a resample); null when undefined there. */
  estimate: number | null;
  /** Lower end of the interval; null when no resample was usable (or n = 0). */
  lower: number | null;
  /** Upper end of the interval; null when no resample was usable (or n = 0). */
  upper: number | null;
  /** The interval's coverage, e.g. 0.95. */
  confidence: number;
  /** Resamples drawn (B). */
  resamples: number;
  /** Resamples whose statistic was defined (the interval is over these). */
  used: number;
  /** Resamples whose statistic was undefined, left out (see the module's notes). */
  degenerate: number;
  /** Units (videos) resampled. */
  units: number;
  /** Whether the units were resampled within strata. */
  stratified: boolean;
  /** Seed of the resampling generator. */
  seed: number;
  /** How the ends were read: the percentile interval ({@link percentileEnds}). */
  method: 'percentile';
}

/**
 * Mulberry32 (Tommy Ettinger, 2017; public domain), the generator `lib/rng.ts` uses for
 * training, repeated here because contracts import nothing of `lib/`.
 *
 * @param seed any number; only its low 32 bits are used.
 * @returns a function returning uniform floats in [0, 1).
 */
export function seededUniform(seed: number): () => number {
  const imul = Math.imul; // a local: a global lookup is slow inside vm contexts (jest, the workflow sandbox)
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkOptions(n: number, opts: BootstrapOptions): { resamples: number; confidence: number; seed: number } {
  const resamples = opts.resamples ?? BOOTSTRAP_DEFAULTS.resamples;
  const confidence = opts.confidence ?? BOOTSTRAP_DEFAULTS.confidence;
  const seed = opts.seed ?? BOOTSTRAP_DEFAULTS.seed;
  if (!Number.isInteger(n) || n < 0) throw new InvalidInputError(`bootstrap: the number of units must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(resamples) || resamples < 1) throw new InvalidInputError(`bootstrap: resamples must be a positive integer, got ${resamples}`);
  if (!(confidence > 0 && confidence < 1)) throw new InvalidInputError(`bootstrap: confidence must be in (0, 1), got ${confidence}`);
  if (opts.strata && opts.strata.length !== n) throw new InvalidInputError(`bootstrap: strata has ${opts.strata.length} entries for ${n} units`);
  return { resamples, confidence, seed };
}

/**
 * The ends of a percentile interval of sorted values: the r-th smallest and the r-th
 * largest, r = max(1, floor(B_used * alpha)), alpha = (1 - confidence) / 2. For B = 2,000
 * and 95% that is the 50th and the 1,951st of 2,000, Efron & Tibshirani's B*alpha-th and
 * B*(1-alpha)-th values up to one rank, chosen so the interval is symmetric in rank.
 *
 * @param sorted values in ascending order, at least one.
 */
export function percentileEnds(sorted: ArrayLike<number>, confidence: number): { lower: number; upper: number } {
  const b = sorted.length;
  if (b === 0) throw new InvalidInputError('percentileEnds: no value');
  const r = Math.min(b, Math.max(1, Math.floor(b * ((1 - confidence) / 2) + 1e-9)));
  return { lower: sorted[r - 1]!, upper: sorted[b - r]! };
}

/**
 * A percentile bootstrap interval of any statistic of n units (the module's method).
 * Deterministic: the same n, strata, options and statistic give the same interval.
 *
 * @param n the number of units (videos).
 * @param statistic the statistic on a resample, given as the indices (0..n-1, with
 *   repeats, length n) of the units drawn; return null (or NaN) where it is undefined.
 *   Called once on the identity (the estimate) and then B times; it must not keep the array.
 * @returns the interval; `lower`/`upper` null when n = 0 or no resample was usable.
 * @throws InvalidInputError on a negative n, B < 1, a confidence outside (0, 1), or strata of the wrong length.
 * @example
 *   const ok = [1, 0, 1, 1];
 *   bootstrapInterval(4, (ix) => ix.reduce((a, i) => a + ok[i]!, 0) / ix.length); // accuracy of 4 videos
 */
export function bootstrapInterval(n: number, statistic: (indices: Int32Array) => number | null, opts: BootstrapOptions = {}): BootstrapInterval {
  const { resamples, confidence, seed } = checkOptions(n, opts);
  const defined = (x: number | null) => (x === null || Number.isNaN(x) ? null : x);
  const identity = Int32Array.from({ length: n }, (_, i) => i);
  const base = {
    confidence,
    resamples,
    units: n,
    stratified: opts.strata !== undefined,
    seed,
    method: 'percentile' as const,
  };
  if (n === 0) return { ...base, estimate: null, lower: null, upper: null, used: 0, degenerate: resamples };
  const estimate = defined(statistic(identity));
  // Members of each stratum (one stratum of everything when not stratified).
  const groups: Int32Array[] = [];
  if (opts.strata) {
    const by = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const s = opts.strata[i]!;
      let g = by.get(s);
      if (!g) by.set(s, (g = []));
      g.push(i);
    }
    for (const key of [...by.keys()].sort((a, b) => a - b)) groups.push(Int32Array.from(by.get(key)!));
  } else groups.push(identity);
  const rng = seededUniform(seed);
  const draw = new Int32Array(n);
  const values: number[] = [];
  for (let b = 0; b < resamples; b++) {
    let o = 0;
    for (const g of groups) for (let j = 0; j < g.length; j++) draw[o++] = g[(rng() * g.length) | 0]!;
    const v = defined(statistic(draw));
    if (v !== null) values.push(v);
  }
  if (values.length === 0) return { ...base, estimate, lower: null, upper: null, used: 0, degenerate: resamples };
  values.sort((a, b) => a - b);
  return { ...base, estimate, ...percentileEnds(values, confidence), used: values.length, degenerate: resamples - values.length };
}

/**
 * Balanced accuracy of classified units (videos): the mean, over the classes that have a
 * unit among those counted, of the share of that class's units predicted as it
 * (recall). Class ids are small non-negative integers (the index of a class in the
 * model's labels); a prediction may be a class no unit has (it counts as a miss).
 *
 * @throws InvalidInputError when a true class counted is not a non-negative integer.
 * @param truth true class of each unit.
 * @param predicted predicted class of each unit (same length).
 * @param indices the units to count, with repeats (a resample); default all of them.
 * @returns a number in [0, 1], or null when no unit is counted.
 */
export function balancedAccuracyOf(truth: ArrayLike<number>, predicted: ArrayLike<number>, indices?: ArrayLike<number>): number | null {
  const m = indices ? indices.length : truth.length;
  if (m === 0) return null;
  let top = 0;
  for (let j = 0; j < m; j++) {
    const t = truth[indices ? indices[j]! : j]!;
    if (!((t | 0) === t && t >= 0)) throw new InvalidInputError(`balancedAccuracyOf: class ${t} is not a non-negative integer`);
    if (t > top) top = t;
  }
  // Counters per class id (ids are small: indices into a model's labels).
  const support = new Int32Array(top + 1);
  const hits = new Int32Array(top + 1);
  for (let j = 0; j < m; j++) {
    const i = indices ? indices[j]! : j;
    const t = truth[i]!;
    support[t]!++;
    if (predicted[i] === t) hits[t]!++;
  }
  let sum = 0;
  let classes = 0;
  for (let c = 0; c <= top; c++) {
    if (support[c]! === 0) continue;
    sum += hits[c]! / support[c]!;
    classes++;
  }
  return sum / classes;
}

/**
 * The videos of a confusion matrix as `(truth, predicted)` pairs, in row-major order:
 * `confusion[t][p]` videos of class t predicted as p. Balanced accuracy depends on the
 * videos only through these pairs, so a stored evaluation's confusion matrix is enough
 * to bootstrap it.
 *
 * @throws InvalidInputError when a count is not a non-negative integer.
 */
export function outcomesFromConfusion(confusion: number[][]): { truth: Int32Array; predicted: Int32Array } {
  const truth: number[] = [];
  const predicted: number[] = [];
  confusion.forEach((row, t) =>
    row.forEach((count, p) => {
      if (!Number.isInteger(count) || count < 0) throw new InvalidInputError(`confusion[${t}][${p}] is ${count}, not a count`);
      for (let k = 0; k < count; k++) {
        truth.push(t);
        predicted.push(p);
      }
    }),
  );
  return { truth: Int32Array.from(truth), predicted: Int32Array.from(predicted) };
}

/** Options of the balanced-accuracy intervals: {@link BootstrapOptions} plus whether to stratify by true class. */
export interface ClassBootstrapOptions extends Omit<BootstrapOptions, 'strata'> {
  /**
   * Resample each true class's videos on its own (default true; no degenerate resample).
   * false: resample all videos together; a resample lacking a class the videos have is
   * degenerate (left out and counted).
   */
  stratify?: boolean;
}

function classStatistic(truth: ArrayLike<number>, stratify: boolean, metric: (indices: Int32Array) => number | null): (indices: Int32Array) => number | null {
  if (stratify) return metric;
  const classes = new Set(Array.from(truth)).size;
  const seen = new Set<number>();
  return (ix) => {
    seen.clear();
    for (let j = 0; j < ix.length; j++) seen.add(truth[ix[j]!]!);
    return seen.size < classes ? null : metric(ix);
  };
}

/**
 * A bootstrap interval of video-level balanced accuracy (see {@link balancedAccuracyOf}),
 * resampling videos (by default within their true class).
 *
 * @param truth true class of each video (class ids, see {@link balancedAccuracyOf}).
 * @param predicted the model's class of each video.
 * @param opts resamples, confidence, seed, and `stratify` (default true).
 * @throws InvalidInputError when the lengths differ, or as {@link bootstrapInterval}.
 * @example
 *   const { truth, predicted } = outcomesFromConfusion(evaluation.metrics.videos.confusion);
 *   balancedAccuracyInterval(truth, predicted); // { estimate: 0.5, lower: 0.31, upper: 0.69, ... }
 */
export function balancedAccuracyInterval(truth: ArrayLike<number>, predicted: ArrayLike<number>, opts: ClassBootstrapOptions = {}): BootstrapInterval {
  if (truth.length !== predicted.length) throw new InvalidInputError(`balancedAccuracyInterval: ${truth.length} true classes, ${predicted.length} predictions`);
  const stratify = opts.stratify ?? true;
  const stat = classStatistic(truth, stratify, (ix) => balancedAccuracyOf(truth, predicted, ix));
  return bootstrapInterval(truth.length, stat, { ...opts, ...(stratify ? { strata: truth } : {}) });
}

/** A metric of classified units on a resample (balanced accuracy by default): see {@link balancedAccuracyOf}. */
export type OutcomeMetric = (truth: ArrayLike<number>, predicted: ArrayLike<number>, indices: ArrayLike<number>) => number | null;

/** Result of {@link pairedDifferenceInterval}: the interval of `metric(b) - metric(a)`, and each model's metric as measured. */
export interface PairedDifference extends BootstrapInterval {
  /** metric(a) on the videos as measured. */
  a: number | null;
  /** metric(b) on the videos as measured. */
  b: number | null;
}

/**
 * A paired bootstrap interval of the difference in a metric between two models measured
 * on the same videos: each resample draws videos (by default within their true class)
 * and computes `metric(b) - metric(a)` on the same drawn videos, so what the videos have
 * in common (an easy video is easy for both) cancels and the interval is narrower than
 * two separate intervals would suggest (Efron & Tibshirani 1993, ch. 8 and 13). An
 * interval above 0 says b is better than a on videos like these.
 *
 * @param outcomes per video, in the same order: `truth` its true class, `a` model a's class, `b` model b's class.
 * @param metric the metric (default {@link balancedAccuracyOf}); a resample where either model's is undefined is degenerate.
 * @throws InvalidInputError when the arrays' lengths differ, or as {@link bootstrapInterval}.
 * @example
 *   pairedDifferenceInterval({ truth: [0, 0, 1, 1], a: [0, 1, 1, 0], b: [0, 0, 1, 1] }); // estimate 0.5 (b - a)
 */
export function pairedDifferenceInterval(
  outcomes: { truth: ArrayLike<number>; a: ArrayLike<number>; b: ArrayLike<number> },
  metric: OutcomeMetric = balancedAccuracyOf,
  opts: ClassBootstrapOptions = {},
): PairedDifference {
  const { truth, a, b } = outcomes;
  if (a.length !== truth.length || b.length !== truth.length) {
    throw new InvalidInputError(`pairedDifferenceInterval: ${truth.length} true classes, ${a.length} predictions of a, ${b.length} of b`);
  }
  const stratify = opts.stratify ?? true;
  const stat = classStatistic(truth, stratify, (ix) => {
    const ma = metric(truth, a, ix);
    const mb = metric(truth, b, ix);
    return ma === null || mb === null ? null : mb - ma;
  });
  const all = Int32Array.from({ length: truth.length }, (_, i) => i);
  const interval = bootstrapInterval(truth.length, stat, { ...opts, ...(stratify ? { strata: truth } : {}) });
  return { ...interval, a: metric(truth, a, all), b: metric(truth, b, all) };
}

/** Result of {@link chanceTest}. */
export interface ChanceTest {
  /** Balanced accuracy of the model on the videos. */
  observed: number | null;
  /** A guesser's chance per video, 1/k (k: the true classes among the videos). */
  chance: number | null;
  /** Estimated P(a guesser's balanced accuracy on videos like these >= observed), as (1 + reached) / (1 + draws); 1 with no video or one class. */
  pValue: number;
  /** Guessers simulated. */
  draws: number;
  /** Seed of the generator. */
  seed: number;
}

/**
 * How often a model that guesses would do as well: a parametric bootstrap under the null
 * hypothesis (Efron & Tibshirani 1993, ch. 16). The guesser is right on each video with
 * probability 1/k, independently (k: the true classes among the videos, so a guesser
 * among more labels would do worse: the test is conservative); each draw gives every
 * class as many videos as it has here and computes the guesser's balanced accuracy. The
 * p-value counts the draws reaching the observed balanced accuracy, plus one for the
 * observation itself ((1 + r) / (1 + B), Davison & Hinkley 1997, "Bootstrap Methods and
 * their Application", ch. 4), so it is never 0.
 *
 * Why beside the percentile interval: the interval cannot show variation it never sees. A
 * class whose every video is right resamples to a recall of 1 every time, so a guesser
 * that was lucky on a class of 1 to 3 videos gets a narrow interval around a high score
 * (measured: with 3 videos of the label and 20 of `other`, a guesser's interval clears 0.6
 * one time in nine). This test has no such blind spot.
 *
 * @param truth true class of each video (class ids, see {@link balancedAccuracyOf}).
 * @param predicted the model's class of each video.
 * @param opts.draws guessers simulated (default 2,000); opts.seed (default 17).
 * @throws InvalidInputError when the lengths differ or draws is not a positive integer.
 */
export function chanceTest(truth: ArrayLike<number>, predicted: ArrayLike<number>, opts: { draws?: number; seed?: number } = {}): ChanceTest {
  const draws = opts.draws ?? BOOTSTRAP_DEFAULTS.resamples;
  const seed = opts.seed ?? BOOTSTRAP_DEFAULTS.seed;
  if (truth.length !== predicted.length) throw new InvalidInputError(`chanceTest: ${truth.length} true classes, ${predicted.length} predictions`);
  if (!Number.isInteger(draws) || draws < 1) throw new InvalidInputError(`chanceTest: draws must be a positive integer, got ${draws}`);
  const observed = balancedAccuracyOf(truth, predicted);
  const sizes = new Map<number, number>();
  for (let i = 0; i < truth.length; i++) sizes.set(truth[i]!, (sizes.get(truth[i]!) ?? 0) + 1);
  const k = sizes.size;
  if (observed === null || k < 2) return { observed, chance: k ? 1 / k : null, pValue: 1, draws, seed };
  const chance = 1 / k;
  const rng = seededUniform(seed);
  const counts = [...sizes.keys()].sort((a, b) => a - b).map((c) => sizes.get(c)!);
  let reached = 0;
  for (let d = 0; d < draws; d++) {
    let sum = 0;
    for (const n of counts) {
      let hits = 0;
      for (let j = 0; j < n; j++) if (rng() < chance) hits++;
      sum += hits / n;
    }
    if (sum / k >= observed - 1e-9) reached++;
  }
  return { observed, chance, pValue: (1 + reached) / (1 + draws), draws, seed };
}
