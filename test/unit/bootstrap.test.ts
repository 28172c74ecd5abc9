/** Bootstrap intervals over videos (contracts/bootstrap.ts): known small cases, determinism, degenerate resamples, paired differences. */
import {
  balancedAccuracyInterval,
  balancedAccuracyOf,
  bootstrapInterval,
  chanceTest,
  InvalidInputError,
  outcomesFromConfusion,
  pairedDifferenceInterval,
  percentileEnds,
  seededUniform,
  type OutcomeMetric,
} from '../../contracts';
import { mulberry32 } from '../../lib/rng';

/** The statistic's value on every resample (the identity call first). */
function recorded(stat: (ix: Int32Array) => number | null): { stat: (ix: Int32Array) => number | null; values: (number | null)[] } {
  const values: (number | null)[] = [];
  return { values, stat: (ix) => (values.push(stat(ix)), values.at(-1)!) };
}
const share = (xs: (number | null)[], x: number | null) => xs.filter((v) => v === x).length / xs.length;

describe('seededUniform', () => {
  it('is the Mulberry32 stream of lib/rng.ts: the same seed gives the same numbers in [0, 1)', () => {
    const a = seededUniform(17);
    const b = seededUniform(17);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    const c = mulberry32(17);
    expect(Array.from({ length: 1000 }, () => c())).toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 1);
  });
});

describe('percentileEnds', () => {
  it('takes the r-th smallest and r-th largest, r = floor(B * alpha), at least 1', () => {
    const sorted = Array.from({ length: 2000 }, (_, i) => i + 1);
    expect(percentileEnds(sorted, 0.95)).toEqual({ lower: 50, upper: 1951 });
    expect(percentileEnds(sorted, 0.9)).toEqual({ lower: 100, upper: 1901 });
    expect(percentileEnds([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95)).toEqual({ lower: 1, upper: 10 });
    expect(percentileEnds([3], 0.95)).toEqual({ lower: 3, upper: 3 });
    expect(() => percentileEnds([], 0.95)).toThrow(InvalidInputError);
  });
});

describe('bootstrapInterval', () => {
  it('a statistic that does not vary has a zero-width interval at its value', () => {
    const r = bootstrapInterval(5, () => 0.7);
    expect(r).toMatchObject({
      estimate: 0.7,
      lower: 0.7,
      upper: 0.7,
      resamples: 2000,
      used: 2000,
      degenerate: 0,
      units: 5,
      confidence: 0.95,
      seed: 17,
      method: 'percentile',
      stratified: false,
    });
  });

  it('resamples n units with replacement: the mean of 0/1 outcomes follows Binomial(n, p) / n', () => {
    // Two units, one success: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    const ok = [1, 0];
    const rec = recorded((ix) => (ok[ix[0]!]! + ok[ix[1]!]!) / 2);
    const r = bootstrapInterval(2, rec.stat, { resamples: 4000 });
    const draws = rec.values.slice(1);
    expect(share(draws, 0)).toBeCloseTo(0.25, 1);
    expect(share(draws, 0.5)).toBeCloseTo(0.5, 1);
    expect(share(draws, 1)).toBeCloseTo(0.25, 1);
    expect(r).toMatchObject({ estimate: 0.5, lower: 0, upper: 1 });
  });

  it('is deterministic: the same data and seed give the same interval; another seed moves the ends a little', () => {
    const ok = [1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1];
    const acc = (ix: Int32Array) => ix.reduce((a, i) => a + ok[i]!, 0) / ix.length;
    const a = bootstrapInterval(ok.length, acc, { resamples: 500 });
    expect(bootstrapInterval(ok.length, acc, { resamples: 500 })).toEqual(a);
    const other = bootstrapInterval(ok.length, acc, { resamples: 500, seed: 18 });
    expect(other.seed).toBe(18);
    expect(Math.abs(other.lower! - a.lower!)).toBeLessThanOrEqual(0.1);
    // 15/20 = 0.75; the normal approximation's 95% interval is 0.75 +- 0.19.
    expect(a.estimate).toBe(0.75);
    expect(a.lower).toBeGreaterThanOrEqual(0.5);
    expect(a.lower).toBeLessThanOrEqual(0.6);
    expect(a.upper).toBeGreaterThanOrEqual(0.9);
  });

  it('resamples each stratum on its own, keeping its size', () => {
    const strata = [0, 0, 0, 1, 1, 9];
    const sizes: string[] = [];
    bootstrapInterval(6, (ix) => (sizes.push([0, 1, 9].map((s) => Array.from(ix).filter((i) => strata[i] === s).length).join(',')), 0), {
      strata,
      resamples: 200,
    });
    expect(new Set(sizes)).toEqual(new Set(['3,2,1']));
  });

  it('leaves degenerate resamples (statistic null or NaN) out and counts them; none usable gives a null interval', () => {
    // Unit 0 alone is undefined: a resample of two that draws it twice (1/4 of them) is degenerate.
    const r = bootstrapInterval(2, (ix) => (ix[0] === 0 && ix[1] === 0 ? null : ix[0] === 1 && ix[1] === 1 ? Number.NaN : 1), { resamples: 4000 });
    expect(r.used + r.degenerate).toBe(4000);
    expect(r.degenerate / 4000).toBeCloseTo(0.5, 1);
    expect(r).toMatchObject({ lower: 1, upper: 1 });
    expect(bootstrapInterval(3, () => null)).toMatchObject({ estimate: null, lower: null, upper: null, used: 0, degenerate: 2000 });
    expect(bootstrapInterval(0, () => 1)).toMatchObject({ units: 0, lower: null, upper: null });
  });

  it.each([
    [{ resamples: 0 }, /resamples/],
    [{ resamples: 1.5 }, /resamples/],
    [{ confidence: 1 }, /confidence/],
    [{ confidence: 0 }, /confidence/],
    [{ strata: [0] }, /strata/],
  ])('rejects %j', (opts, re) => {
    expect(() => bootstrapInterval(2, () => 1, opts)).toThrow(InvalidInputError);
    expect(() => bootstrapInterval(2, () => 1, opts)).toThrow(re);
  });
});

describe('balanced accuracy of videos', () => {
  it('is the mean recall over the classes counted, a resample counting each drawn video once per draw', () => {
    const truth = [0, 0, 1, 1, 1, 1];
    const pred = [0, 1, 1, 1, 1, 0];
    expect(balancedAccuracyOf(truth, pred)).toBeCloseTo((0.5 + 0.75) / 2);
    expect(balancedAccuracyOf(truth, pred, [0, 0, 2])).toBe(1);
    expect(balancedAccuracyOf(truth, pred, [1, 5])).toBe(0);
    // A prediction of a class no video has is a miss (class 7).
    expect(balancedAccuracyOf([0, 1], [7, 1])).toBe(0.5);
    expect(balancedAccuracyOf([], [])).toBeNull();
  });

  it('reads the videos of a confusion matrix', () => {
    const { truth, predicted } = outcomesFromConfusion([
      [2, 1],
      [0, 3],
    ]);
    expect(Array.from(truth)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(Array.from(predicted)).toEqual([0, 0, 1, 1, 1, 1]);
    expect(outcomesFromConfusion([]).truth).toHaveLength(0);
    expect(() => outcomesFromConfusion([[1.5]])).toThrow(InvalidInputError);
  });

  it('chance level: 12 videos, 6 of each class, 3 of each right: 50.0%, 95% interval 25-75% (Binomial(12, 1/2) / 12)', () => {
    const { truth, predicted } = outcomesFromConfusion([
      [3, 3],
      [3, 3],
    ]);
    const r = balancedAccuracyInterval(truth, predicted);
    // Stratified: BA = (X + Y) / 12 with X, Y ~ Binomial(6, 1/2); P(X + Y <= 2) = 1.9% < 2.5% < P(<= 3) = 7.3%.
    expect(r).toMatchObject({ estimate: 0.5, lower: 0.25, upper: 0.75, stratified: true, degenerate: 0, units: 12 });
  });

  it('a perfect model on 2 + 2 videos: [1, 1]; one miss among the 2 of a class: [0.5, 1]', () => {
    expect(balancedAccuracyInterval([0, 0, 1, 1], [0, 0, 1, 1])).toMatchObject({ estimate: 1, lower: 1, upper: 1 });
    const rec = recorded((ix) => balancedAccuracyOf([0, 0, 1, 1], [0, 1, 1, 1], ix));
    // Within class 0 the recall is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4; class 1 always 1.
    const r = bootstrapInterval(4, rec.stat, { strata: [0, 0, 1, 1], resamples: 4000 });
    expect(share(rec.values.slice(1), 0.5)).toBeCloseTo(0.25, 1);
    expect(share(rec.values.slice(1), 0.75)).toBeCloseTo(0.5, 1);
    expect(r).toMatchObject({ estimate: 0.75, lower: 0.5, upper: 1 });
    expect(balancedAccuracyInterval([0, 0, 1, 1], [0, 1, 1, 1])).toMatchObject({ estimate: 0.75, lower: 0.5, upper: 1 });
  });

  it('without strata, a resample lacking a class is degenerate: left out and counted (never with strata)', () => {
    // 1 video of class 1 among 10: a resample of 10 misses it with probability (9/10)^10 = 34.9%.
    const truth = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const pred = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    const plain = balancedAccuracyInterval(truth, pred, { stratify: false });
    expect(plain.stratified).toBe(false);
    expect(plain.degenerate / plain.resamples).toBeGreaterThan(0.3);
    expect(plain.degenerate / plain.resamples).toBeLessThan(0.4);
    expect(plain.used + plain.degenerate).toBe(2000);
    expect(balancedAccuracyInterval(truth, pred).degenerate).toBe(0);
  });

  it('rejects arrays of different lengths', () => {
    expect(() => balancedAccuracyInterval([0, 1], [0])).toThrow(InvalidInputError);
  });
});

describe('pairedDifferenceInterval', () => {
  const truth = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];

  it('two identical models differ by exactly 0 on every resample (separate intervals would be wide)', () => {
    const a = [0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1];
    const d = pairedDifferenceInterval({ truth, a, b: a });
    expect(d).toMatchObject({ estimate: 0, lower: 0, upper: 0, degenerate: 0 });
    const alone = balancedAccuracyInterval(truth, a);
    expect(alone.upper! - alone.lower!).toBeGreaterThan(0.3);
  });

  it('b right where a was wrong: the difference is b - a, and its interval excludes 0', () => {
    const a = [0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0]; // half of each class: 0.5
    const b = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]; // all right: 1
    const d = pairedDifferenceInterval({ truth, a, b });
    expect(d).toMatchObject({ a: 0.5, b: 1, estimate: 0.5 });
    expect(d.lower).toBeGreaterThan(0);
    expect(d.upper).toBeLessThanOrEqual(0.8);
    // Reversed, the interval is the mirror image.
    const r = pairedDifferenceInterval({ truth, a: b, b: a });
    expect(r.estimate).toBe(-0.5);
    expect(r.upper).toBeLessThan(0);
    expect(pairedDifferenceInterval({ truth, a, b })).toEqual(d); // deterministic
  });

  it('pairs the models on the same drawn videos: a swap of errors between two models is no difference on average', () => {
    // a misses videos 0 and 6, b misses 1 and 7: the same balanced accuracy, opposite videos.
    const a = truth.map((t, i) => (i === 0 || i === 6 ? 1 - t : t));
    const b = truth.map((t, i) => (i === 1 || i === 7 ? 1 - t : t));
    const d = pairedDifferenceInterval({ truth, a, b });
    expect(d.estimate).toBe(0);
    expect(d.lower).toBeLessThan(0);
    expect(d.upper).toBeGreaterThan(0);
  });

  it('takes any metric of (truth, predicted, indices): plain accuracy here', () => {
    const accuracy: OutcomeMetric = (t, p, ix) => (ix.length ? Array.from(ix).filter((i) => t[i] === p[i]).length / ix.length : null);
    const a = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const d = pairedDifferenceInterval({ truth, a, b: truth }, accuracy);
    expect(d).toMatchObject({ a: 0.5, b: 1, estimate: 0.5, lower: 0.5, upper: 0.5 }); // stratified: always 6 of each class
    const plain = pairedDifferenceInterval({ truth, a, b: truth }, accuracy, { stratify: false });
    expect(plain.lower).toBeLessThan(0.5); // unstratified, the share of class 1 varies
  });

  it('rejects arrays of different lengths', () => {
    expect(() => pairedDifferenceInterval({ truth: [0, 1], a: [0, 1], b: [0] })).toThrow(InvalidInputError);
  });
});

describe('chanceTest', () => {
  it('estimates how often a guess (right with probability 1/k per video) reaches the balanced accuracy observed', () => {
    // Perfect on 1 + 1 videos: a guess does it 1/4 of the time; on 3 + 3, 1/64.
    const tiny = chanceTest([0, 1], [0, 1]);
    expect(tiny.pValue).toBeCloseTo(0.25, 1);
    expect(tiny).toMatchObject({ observed: 1, chance: 0.5, draws: 2000, seed: 17 });
    expect(chanceTest([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], { draws: 20000 }).pValue).toBeCloseTo(1 / 64, 2);
    // Three classes, one video each, all right: (1/3)^3.
    expect(chanceTest([0, 1, 2], [0, 1, 2], { draws: 20000 }).pValue).toBeCloseTo(1 / 27, 2);
    // At chance, a guess does as well about half the time or more.
    expect(chanceTest([0, 0, 1, 1], [0, 1, 1, 0]).pValue).toBeGreaterThan(0.5);
  });

  it('is never 0 ((1 + r) / (1 + B)), deterministic, and 1 with one class or no video', () => {
    const truth = Array.from({ length: 40 }, (_, i) => i % 2);
    const t = chanceTest(truth, truth);
    expect(t.pValue).toBe(1 / 2001);
    expect(chanceTest(truth, truth)).toEqual(t);
    expect(chanceTest([0, 0], [0, 0])).toMatchObject({ pValue: 1, chance: 1 });
    expect(chanceTest([], [])).toMatchObject({ pValue: 1, chance: null, observed: null });
    expect(() => chanceTest([0], [])).toThrow(InvalidInputError);
    expect(() => chanceTest([0], [0], { draws: 0 })).toThrow(InvalidInputError);
  });
});
