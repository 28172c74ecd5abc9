/** The promotion gate's rules, model references and the video aggregation (pure logic). */
import { evenlySpaced } from '../../activities/models/evalset';
import { balancedAccuracy, parseModelRef, promotionGate, type EvalSetMetrics, type GateConfig, type LevelMetrics } from '../../contracts';
import sharp from 'sharp';
import { aggregateVideo } from '../../lib/classifier';
import { applyScope, centred, lumaStd, meanRow, nearestSimilarity, quantile } from '../../lib/scope';

/** Metrics from per-label recalls at the frame and video levels. */
function metrics(frameRecall: Record<string, number | null>, videoRecall: Record<string, number | null>): EvalSetMetrics {
  const level = (r: Record<string, number | null>): LevelMetrics => ({
    n: 10,
    accuracy: null,
    macroF1: null,
    perLabel: Object.fromEntries(Object.entries(r).map(([l, recall]) => [l, { precision: null, recall, f1: null, support: recall === null ? 0 : 5 }])),
    confusion: [],
  });
  return { frames: level(frameRecall), videos: level(videoRecall), skippedFrames: 0, aggregation: 'mean-probability' };
}
const CFG: GateConfig = { margin: 0.02, recallTolerance: 0.05, minScore: 0.5 };
const base = { name: 'cup', candidateVersion: 2, evalVersion: 3, config: CFG };
const prod = metrics({ cup: 0.8, other: 0.9 }, { cup: 0.5, other: 1 });

describe('promotionGate', () => {
  it('holds back without an evaluation set, and without evaluations on it', () => {
    const g = promotionGate({ ...base, evalVersion: null, candidate: null, productionVersion: 1, production: null });
    expect(g.promote).toBe(false);
    expect(g.reason).toMatch(/^held back: eval-set: label "cup" has no fixed evaluation set/);
    const h = promotionGate({ ...base, candidate: metrics({}, {}), productionVersion: 1, production: null });
    expect(h.rules.at(-1)).toMatchObject({ rule: 'evaluated', passed: false });
    expect(h.reason).toContain('production v1');
  });

  it('promotes a first model that reaches the minimum, not one below it', () => {
    expect(promotionGate({ ...base, candidate: metrics({ cup: 1 }, { cup: 1, other: 0.5 }), productionVersion: null, production: null }).promote).toBe(true);
    const low = promotionGate({ ...base, candidate: metrics({ cup: 1 }, { cup: 0.5, other: 0 }), productionVersion: null, production: null });
    expect(low.promote).toBe(false);
    expect(low.rules.at(-1)).toMatchObject({ rule: 'first-model', passed: false });
  });

  it('needs the video-level margin: a tie or a gain below the margin is held back', () => {
    const tie = promotionGate({ ...base, candidate: prod, productionVersion: 1, production: prod });
    expect(tie.promote).toBe(false);
    expect(tie.rules.filter((r) => !r.passed).map((r) => r.rule)).toEqual(['video-margin']);
    const small = promotionGate({ ...base, candidate: metrics({ cup: 0.8, other: 0.9 }, { cup: 0.52, other: 1 }), productionVersion: 1, production: prod });
    expect(small.promote).toBe(false); // +1% < 2%
    const exact = promotionGate({ ...base, candidate: metrics({ cup: 0.8, other: 0.9 }, { cup: 0.54, other: 1 }), productionVersion: 1, production: prod });
    expect(exact.promote).toBe(true); // +2% = margin
  });

  it('holds back a better model that loses one label frame recall beyond the tolerance, naming the label', () => {
    const g = promotionGate({ ...base, candidate: metrics({ cup: 0.74, other: 1 }, { cup: 1, other: 1 }), productionVersion: 1, production: prod });
    expect(g.promote).toBe(false);
    expect(g.rules.filter((r) => !r.passed).map((r) => r.rule)).toEqual(['label-recall']);
    expect(g.reason).toContain('cup 74.0% < 80.0% - 5.0%');
    const within = promotionGate({ ...base, candidate: metrics({ cup: 0.76, other: 1 }, { cup: 1, other: 1 }), productionVersion: 1, production: prod });
    expect(within.promote).toBe(true);
    expect(within.reason).toMatch(/^promoted: /);
  });

  it('treats a label the candidate lost entirely as a recall loss', () => {
    const g = promotionGate({ ...base, candidate: metrics({ other: 1 }, { cup: 1, other: 1 }), productionVersion: 1, production: prod });
    expect(g.rules.find((r) => r.rule === 'label-recall')!.passed).toBe(false);
  });

  it('balanced accuracy is the mean recall over labels with examples', () => {
    expect(balancedAccuracy(metrics({}, { a: 1, b: 0.5, c: null }).videos)).toBeCloseTo(0.75);
    expect(balancedAccuracy(metrics({}, {}).videos)).toBeNull();
  });
});

describe('parseModelRef', () => {
  it.each([
    ['cup', { label: 'cup', version: 'production' }],
    ['Cup@3', { label: 'cup', version: 3 }],
    ['cup@v12', { label: 'cup', version: 12 }],
    ['cup@production', { label: 'cup', version: 'production' }],
    ['cup@latest', { label: 'cup', version: 'latest' }],
  ])('%s', (ref, want) => expect(parseModelRef(ref)).toEqual(want));
  it.each(['@3', 'cup@0', 'cup@x', 'cup@1.5'])('rejects %s', (ref) => expect(() => parseModelRef(ref)).toThrow(/model reference/));
});

describe('aggregateVideo', () => {
  it('takes the argmax of the mean probability, which can differ from the majority vote', () => {
    // Two frames weakly "a", one frame strongly "b": the votes say a, the mean says b.
    const r = aggregateVideo(Float32Array.from([0.55, 0.45, 0.55, 0.45, 0.0, 1.0]), ['a', 'b']);
    expect(r.votes).toEqual({ a: 2, b: 1 });
    expect(r.label).toBe('b');
    expect(r.probabilities['b']).toBeCloseTo(0.633, 3);
  });
  it('leaves out-of-scope frames out, and says unknown when most frames are', () => {
    const p = Float32Array.from([0.9, 0.1, 0.2, 0.8, 0.3, 0.7]);
    expect(aggregateVideo(p, ['a', 'b'], [true, false, false]).label).toBe('unknown');
    const r = aggregateVideo(p, ['a', 'b'], [true, true, false]);
    expect(r).toMatchObject({ unknownFrames: 1, frames: 3 });
    expect(r.probabilities['a']).toBeCloseTo(0.55);
  });
});

describe('evenlySpaced', () => {
  it('picks k of n spread over the whole range', () => {
    expect(evenlySpaced(3, 8)).toEqual([0, 1, 2]);
    expect(evenlySpaced(10, 4)).toEqual([1, 3, 6, 8]);
  });
});

describe('out-of-scope scoring (lib/scope)', () => {
  it('nearest similarity skips the query group (leave-one-video-out), and the type-7 quantile', () => {
    const refs = Float32Array.from([1, 0, 0, 1]);
    const q = Float32Array.from([1, 0]);
    expect(Array.from(nearestSimilarity(q, refs, 2))).toEqual([1]);
    expect(Array.from(nearestSimilarity(q, refs, 2, { query: ['a'], refs: ['a', 'b'] }))).toEqual([0]);
    expect(Array.from(nearestSimilarity(q, refs, 2, { query: ['a'], refs: ['a', 'a'] }))).toEqual([NaN]);
    // Two centred references are opposite: a real score of -1, not "no reference" (the
    // calibration dropped both as such, and failed on a two-video training split).
    const two = centred(Float32Array.from([1, 2, 3, 1]), meanRow(Float32Array.from([1, 2, 3, 1]), 2), 2);
    const s = Array.from(nearestSimilarity(two, two, 2, { query: ['v1', 'v2'], refs: ['v1', 'v2'] }));
    expect(s.every((x) => !Number.isNaN(x) && x < -0.999)).toBe(true);
    expect(quantile([1, 2, 3, 4, 5], 0.25)).toBe(2);
    expect(quantile([0, 10], 0.05)).toBeCloseTo(0.5);
  });
  it('centring removes the shared component: two frames equal to the mean plus opposite offsets become opposite', () => {
    const rows = Float32Array.from([1, 1, 1, 0, 1, 1, 1, 2]);
    const c = meanRow(rows, 4);
    expect(Array.from(c)).toEqual([1, 1, 1, 1]);
    const z = centred(rows, c, 4);
    expect(Array.from(z)).toEqual([0, 0, 0, -1, 0, 0, 0, 1]);
  });
  it('flags flat frames as degenerate without any scope file', async () => {
    const flat = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10, g: 10, b: 10 } } }).png().toBuffer();
    const noisy = await sharp(Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 7919) % 256)), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
    const stds = [await lumaStd(flat), await lumaStd(noisy)];
    expect(stds[0]).toBeLessThan(1);
    expect(stds[1]).toBeGreaterThan(20);
    expect(applyScope(null, new Float32Array(0), 0, stds)).toMatchObject({ inScope: [false, true], reasons: ['degenerate', null], scores: null });
  });
});
