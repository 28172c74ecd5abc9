/**
 * Video-level calibration (`activities/training/calibrate.ts`), cross-fitting by video
 * (`crossfit.ts`), and how an image model's input is prepared from its artifact, old
 * format included (`preparationOf`).
 */
import { shiftProbabilities, videoBalancedAccuracy, videoLogitOffsets } from '../../activities/training/calibrate';
import { calibrateOnFolds, crossFit, videoClasses, videoFolds } from '../../activities/training/crossfit';
import { pixelsToFloats, preparationOf } from '../../domain/backbone/model';

/**
 * Weak labels' typical failure: positive videos (class 0) whose frames mostly do not show
 * the label get a mean probability of the label of 0.35; negative videos 0.1. The argmax
 * of the mean calls every video class 1 (balanced accuracy 0.5), though the scores rank
 * every positive video above every negative one.
 */
function weakVideos(): { probs: Float32Array; videoOf: Int32Array; videoClass: Int32Array } {
  const videoClass = Int32Array.from([0, 0, 0, 1, 1, 1]);
  const rows: number[] = [];
  const videoOf: number[] = [];
  videoClass.forEach((c, v) => {
    for (let f = 0; f < 4; f++) {
      const p0 = c === 0 ? 0.3 + 0.03 * f : 0.05 + 0.03 * f;
      rows.push(p0, 1 - p0);
      videoOf.push(v);
    }
  });
  return { probs: Float32Array.from(rows), videoOf: Int32Array.from(videoOf), videoClass };
}

describe('videoLogitOffsets', () => {
  it('moves the decision to where the videos separate, without changing any ranking', () => {
    const { probs, videoOf, videoClass } = weakVideos();
    const c = videoLogitOffsets(probs, 2, videoOf, videoClass);
    expect(c.before).toBeCloseTo(0.5, 6);
    expect(c.after).toBe(1);
    expect(c.offsets[1]).toBe(0); // the reference class (last: other) stays at 0
    expect(c.offsets[0]).toBeGreaterThan(0);
    expect(c.videos).toBe(6);
    const shifted = shiftProbabilities(probs, 2, c.offsets);
    for (let i = 0; i < videoOf.length; i++) expect(shifted[2 * i]! + shifted[2 * i + 1]!).toBeCloseTo(1, 5);
    const logp = Float32Array.from(shifted, (p) => Math.log(p));
    expect(videoBalancedAccuracy(logp, 2, videoOf, videoClass, [0, 0])).toBe(1);
    // Monotone: the order of the frames by the label's probability is unchanged.
    const order = (p: Float32Array) => Array.from({ length: videoOf.length }, (_, i) => i).sort((a, b) => p[2 * a]! - p[2 * b]!);
    expect(order(shifted)).toEqual(order(probs));
  });

  it('leaves a decision that is already right alone (the smallest offset wins ties)', () => {
    const videoClass = Int32Array.from([0, 1]);
    const probs = Float32Array.from([0.9, 0.1, 0.8, 0.2, 0.1, 0.9, 0.2, 0.8]);
    const c = videoLogitOffsets(probs, 2, Int32Array.from([0, 0, 1, 1]), videoClass);
    expect(c).toMatchObject({ offsets: [0, 0], before: 1, after: 1 });
  });

  it('with one class of videos, returns no offsets; refuses inconsistent input naming it', () => {
    const c = videoLogitOffsets(Float32Array.from([0.2, 0.8]), 2, Int32Array.from([0]), Int32Array.from([1]));
    expect(c.offsets).toEqual([0, 0]);
    expect(() => videoLogitOffsets(Float32Array.from([0.2, 0.8, 0.5]), 2, Int32Array.from([0]), Int32Array.from([1]))).toThrow(
      /3 values, expected 1 frames x 2 classes/,
    );
    expect(() => videoLogitOffsets(Float32Array.from([0.2, 0.8]), 2, Int32Array.from([4]), Int32Array.from([1]))).toThrow(/frame 0 points at video 4/);
    expect(() => videoLogitOffsets(Float32Array.from([0.2, 0.8]), 2, Int32Array.from([0]), Int32Array.from([2]))).toThrow(/video 0 has class 2/);
  });
});

describe('crossFit by video', () => {
  const videoIds = ['a', 'a', 'b', 'b', 'c', 'd', 'd', 'e', 'f', 'f'];
  const labels = Int32Array.from([0, 0, 0, -1, 0, 1, 1, 1, 1, -1]);

  it('stratifies folds by class and predicts every row with a model that never saw its video', async () => {
    const vclass = videoClasses(videoIds, labels);
    expect([...vclass.entries()].sort()).toEqual([
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['d', 1],
      ['e', 1],
      ['f', 1],
    ]);
    const folds = videoFolds(vclass, 3, 7);
    for (let f = 0; f < 3; f++) {
      const inFold = [...folds.entries()].filter(([, x]) => x === f).map(([v]) => vclass.get(v));
      expect(inFold.sort()).toEqual([0, 1]); // one video of each class per fold
    }
    expect(videoFolds(vclass, 3, 7)).toEqual(folds); // deterministic
    const trainedOn: Array<Set<string>> = [];
    const cf = await crossFit({
      videoIds,
      labels,
      numClasses: 2,
      folds: 3,
      seed: 7,
      train: async (rows) => {
        for (const r of rows) expect(labels[r]).toBeGreaterThanOrEqual(0); // unlabelled rows are never trained on
        return new Set(Array.from(rows, (r) => videoIds[r]!));
      },
      predict: async (seen, rows) => {
        trainedOn.push(seen);
        for (const r of rows) expect(seen.has(videoIds[r]!)).toBe(false);
        return new Float32Array(rows.length * 2).fill(0.5);
      },
    });
    expect(cf.trainedFolds).toBe(3);
    expect(Array.from(cf.probs).every((p) => p === 0.5)).toBe(true); // every row, unlabelled ones included
    await expect(
      crossFit({ videoIds, labels, numClasses: 2, folds: 1, seed: 7, train: async () => 0, predict: async () => new Float32Array(0) }),
    ).rejects.toThrow(/folds must be in 2\.\.10/);
  });

  it('calibrates on the out-of-fold rows', async () => {
    // Out-of-fold probabilities like weak labels give: positives low, negatives lower.
    const cf = await crossFit({
      videoIds,
      labels,
      numClasses: 2,
      folds: 3,
      seed: 7,
      train: async () => null,
      predict: async (_m, rows) => Float32Array.from(Array.from(rows).flatMap((r) => (vclassOf(videoIds[r]!) === 0 ? [0.3, 0.7] : [0.1, 0.9]))),
    });
    const { calibration, shifted } = calibrateOnFolds(cf, videoIds, labels, 2);
    expect(calibration).toMatchObject({ before: 0.5, after: 1, videos: 6 });
    expect(shifted[0]!).toBeGreaterThan(0.5);
    expect(shifted[2 * 5]!).toBeLessThan(0.5);
  });
  const vclassOf = (v: string) => (['a', 'b', 'c'].includes(v) ? 0 : 1);
});

describe('preparationOf (artifact input -> how its images are made)', () => {
  it('an EfficientNet student: centre crop, bytes as they are', () => {
    const p = preparationOf({ size: 224, blurSigma: 0, resize: 'crop', range: [0, 255] });
    expect(p).toEqual({ inputSize: 224, blurSigma: 0, resize: 'crop', range: [0, 255] });
    expect(Array.from(pixelsToFloats([Uint8Array.from([0, 128, 255])], 3, p.range))).toEqual([0, 128, 255]);
  });
  it('a student of the first format (nsfwjs backbones, no resize or range): stretched, bytes / 255', () => {
    const p = preparationOf({ size: 224, blurSigma: 0.5 });
    expect(p).toEqual({ inputSize: 224, blurSigma: 0.5, resize: 'fill', range: [0, 1] });
    const f = pixelsToFloats([Uint8Array.from([0, 51, 255]), Uint8Array.from([255, 0, 0])], 3, p.range);
    expect(Array.from(f).map((x) => Math.round(x * 1000) / 1000)).toEqual([0, 0.2, 1, 1, 0, 0]);
  });
});
