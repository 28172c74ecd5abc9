import { DatasetError, InvalidInputError, ModelMismatchError } from '../../contracts';
import { initTensorflow } from '../../lib/tf';
import { readHeadMetadata } from '../../activities/training/head-model';
import { predict } from '../../activities/training/predict';
import { distillStudent, fineTuneStudent } from '../../activities/training/student';
import { trainTeacher } from '../../activities/training/teacher';
import { wholeBackboneTeacher } from '../../activities/training/teacher-finetune';
import { learningRateAt } from '../../activities/training/loop';
import { TeacherParams } from '../../contracts/inputs';
import { evaluate } from '../../domain/metrics';
import { deserializeModel, serializeModel, type SerializedModel } from '../../activities/training/serialize';
import { cutmix, cutmixTarget } from '../../domain/backbone/cutmix';
import { classBalancedSampler, deriveSeed, mulberry32, permutation, randNormal } from '../../lib/rng';

jest.setTimeout(30_000);

const DIM = 16;
const K = 3;

/** Separable Gaussian clusters: class c centred at 3*e_c (+ a shared random offset), unit variance. */
function clusters(counts: number[], seed: number): { features: Float32Array; labels: Int32Array } {
  const rng = mulberry32(seed);
  const n = counts.reduce((a, b) => a + b, 0);
  const features = new Float32Array(n * DIM);
  const labels = new Int32Array(n);
  let r = 0;
  counts.forEach((count, c) => {
    for (let i = 0; i < count; i++, r++) {
      labels[r] = c;
      for (let d = 0; d < DIM; d++) features[r * DIM + d] = randNormal(rng) * 0.8 + (d === c ? 3 : 0) + (d === DIM - 1 ? 1 : 0);
    }
  });
  // Shuffle rows so classes are interleaved.
  const p = permutation(rng, n);
  const f2 = new Float32Array(n * DIM);
  const l2 = new Int32Array(n);
  p.forEach((src, dst) => {
    f2.set(features.subarray(src * DIM, (src + 1) * DIM), dst * DIM);
    l2[dst] = labels[src] as number;
  });
  return { features: f2, labels: l2 };
}

function argmaxRows(probs: Float32Array, k: number): Int32Array {
  const n = probs.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if ((probs[i * k + j] as number) > (probs[i * k + best] as number)) best = j;
    out[i] = best;
  }
  return out;
}

function accuracy(pred: Int32Array, labels: Int32Array): number {
  let ok = 0;
  pred.forEach((p, i) => (ok += p === labels[i] ? 1 : 0));
  return ok / pred.length;
}

const train = clusters([300, 100, 30], 1);
const test = clusters([200, 200, 200], 2);

beforeAll(async () => {
  // wasm in jest: tfjs-node's native typed arrays do not pass tfjs's instanceof checks inside
  // jest's vm realm; the native backend is tested in a child process (training-native.test.ts).
  const rt = await initTensorflow('wasm');
  expect(rt.backend).toBe('wasm');
});

describe('rng', () => {
  it('mulberry32 is deterministic, uniform-ish and seed-dependent', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 10000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 1);
    expect(mulberry32(43)()).not.toBe(mulberry32(42)());
    expect(deriveSeed(1, 1, 2)).toBe(deriveSeed(1, 1, 2));
    expect(new Set([deriveSeed(1, 1, 1), deriveSeed(1, 1, 2), deriveSeed(2, 1, 1), deriveSeed(1, 0)]).size).toBe(4);
  });

  it('class-balanced sampler draws a 10% minority class as often as the majority', () => {
    const classes = new Int32Array(1000);
    for (let i = 900; i < 1000; i++) classes[i] = 1;
    const draw = classBalancedSampler(classes, 2);
    const idx = draw(mulberry32(7), 20000);
    let minority = 0;
    idx.forEach((i) => (minority += classes[i] === 1 ? 1 : 0));
    expect(minority / idx.length).toBeGreaterThan(0.47);
    expect(minority / idx.length).toBeLessThan(0.53);
    // Rows within a class are drawn uniformly: every minority row is drawn, none ~100x too often.
    const hits = new Int32Array(1000);
    idx.forEach((i) => (hits[i] = (hits[i] as number) + 1));
    expect(Math.min(...hits.subarray(900))).toBeGreaterThan(50);
    // Unlabelled (-1) rows are never drawn.
    const withUnlabelled = classBalancedSampler(Int32Array.from([0, -1, 1, -1]), 2)(mulberry32(1), 1000);
    expect(withUnlabelled.every((i) => i === 0 || i === 2)).toBe(true);
  });
});

describe('teacher', () => {
  let teacher: SerializedModel;
  let teacherTestPred: Int32Array;

  beforeAll(async () => {
    const t0 = performance.now();
    const res = await trainTeacher({ ...train, dim: DIM, numClasses: K, hidden: 32, epochs: 12, seed: 3 });
    process.stdout.write(`teacher: ${train.labels.length} rows, 12 epochs in ${(performance.now() - t0).toFixed(0)} ms\n`);
    teacher = res.model;
    expect(res.history.map((h) => h.epoch)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(res.history[11]!.loss).toBeLessThan(res.history[0]!.loss);
    teacherTestPred = argmaxRows(await predict(teacher, test.features, DIM), K);
  });

  it('reaches > 95% held-out accuracy on separable clusters (imbalanced training set)', () => {
    expect(accuracy(teacherTestPred, test.labels)).toBeGreaterThan(0.95);
  });

  it('stores its shape and hyper-parameters as metadata', () => {
    const meta = readHeadMetadata(teacher)!;
    expect(meta.kind).toBe('teacher');
    expect(meta.arch).toEqual({ dim: DIM, hidden: 32, numClasses: K, dropout: 0.2 });
    expect(meta.hyper['learningRate']).toBe(1e-3);
    expect(meta.epoch).toBe(12);
  });

  it('serialisation round-trip gives identical predictions', async () => {
    const net = await deserializeModel(teacher);
    const again = await serializeModel(net);
    net.dispose();
    const a = await predict(teacher, test.features, DIM);
    const b = await predict(again, test.features, DIM);
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    for (let i = 0; i < 3; i++) {
      const row = a.subarray(i * K, (i + 1) * K);
      expect(row.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 5);
    }
    await expect(predict(teacher, test.features, DIM + 1)).rejects.toThrow(InvalidInputError);
  });

  it('label smoothing caps confidence near 1 - eps + eps/K', async () => {
    const common = { ...train, dim: DIM, numClasses: K, hidden: 32, epochs: 25, seed: 5, dropout: 0, learningRate: 3e-3 };
    const smooth = await predict((await trainTeacher({ ...common, labelSmoothing: 0.2 })).model, train.features, DIM);
    const hard = await predict((await trainTeacher({ ...common, labelSmoothing: 0 })).model, train.features, DIM);
    const stats = (p: Float32Array) => {
      const top = Array.from({ length: p.length / K }, (_, i) => Math.max(...p.subarray(i * K, (i + 1) * K)));
      return { mean: top.reduce((a, b) => a + b, 0) / top.length, max: Math.max(...top) };
    };
    const s = stats(smooth);
    const h = stats(hard);
    process.stdout.write(`label smoothing 0.2: mean top prob ${s.mean.toFixed(3)} max ${s.max.toFixed(3)}; none: ${h.mean.toFixed(3)} ${h.max.toFixed(4)}\n`);
    expect(s.mean).toBeLessThan(1 - 0.2 / 2); // the per-row optimum is 1 - 0.2 + 0.2/3 = 0.867
    expect(s.mean).toBeGreaterThan(0.75);
    expect(h.mean).toBeGreaterThan(0.97);
    expect(h.max).toBeGreaterThan(0.999);
  });

  it('resumes from epoch k with bit-identical final weights, and does not leak tensors', async () => {
    const { tf } = await initTensorflow();
    const before = tf.memory().numTensors;
    const opts = { ...train, dim: DIM, numClasses: K, hidden: 16, epochs: 6, seed: 11 };
    const checkpoints = new Map<number, SerializedModel>();
    const seen: number[] = [];
    const full = await trainTeacher({
      ...opts,
      onEpoch: async (epoch, loss, weights) => {
        seen.push(epoch);
        expect(Number.isFinite(loss)).toBe(true);
        checkpoints.set(epoch, await weights());
      },
    });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    const resumedEpochs: number[] = [];
    const resumed = await trainTeacher({
      ...opts,
      resume: { epoch: 3, weights: checkpoints.get(3)! },
      onEpoch: async (epoch) => void resumedEpochs.push(epoch),
    });
    expect(resumedEpochs).toEqual([4, 5, 6]);
    expect(resumed.history).toEqual(full.history);
    expect(resumed.model.weights.equals(full.model.weights)).toBe(true);
    // A different seed gives different weights (the equality above is not vacuous).
    const other = await trainTeacher({ ...opts, seed: 12 });
    expect(other.model.weights.equals(full.model.weights)).toBe(false);
    // Checkpoints carry Adam moments; final models do not.
    // (plus Adam's step count and the running powers of beta1 and beta2: three 4-byte scalars)
    expect(checkpoints.get(3)!.weights.length).toBe(3 * full.model.weights.length + 12);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('uses CutMix-style soft-target extra samples', async () => {
    // Extra rows halfway between class 0 and 1 centres with 50/50 targets.
    const m = 60;
    const rng = mulberry32(9);
    const features = new Float32Array(m * DIM);
    const targets = new Float32Array(m * K);
    for (let i = 0; i < m; i++) {
      for (let d = 0; d < DIM; d++) features[i * DIM + d] = randNormal(rng) * 0.3 + (d < 2 ? 1.5 : 0) + (d === DIM - 1 ? 1 : 0);
      targets.set(cutmixTarget(0, 1, 0.5, K), i * K);
    }
    const res = await trainTeacher({
      ...train,
      dim: DIM,
      numClasses: K,
      hidden: 32,
      epochs: 15,
      seed: 4,
      extraSamples: { features, targets },
    });
    const p = await predict(res.model, features, DIM);
    let p0 = 0;
    let p1 = 0;
    for (let i = 0; i < m; i++) {
      p0 += p[i * K] as number;
      p1 += p[i * K + 1] as number;
    }
    expect(p0 / m).toBeGreaterThan(0.3);
    expect(p1 / m).toBeGreaterThan(0.3);
    await expect(trainTeacher({ ...train, dim: DIM, numClasses: K, extraSamples: { features, targets: targets.subarray(1) } })).rejects.toThrow(
      InvalidInputError,
    );
  });

  it('rejects unusable datasets and inputs with named errors', async () => {
    const one = { features: new Float32Array(4 * DIM), labels: new Int32Array(4), dim: DIM, numClasses: K };
    await expect(trainTeacher(one)).rejects.toThrow(DatasetError);
    await expect(trainTeacher({ ...one, labels: new Int32Array(0), features: new Float32Array(0) })).rejects.toThrow(DatasetError);
    await expect(trainTeacher({ ...one, labels: Int32Array.from([0, 1, 2, 3]) })).rejects.toThrow(InvalidInputError);
    await expect(trainTeacher({ ...one, labels: Int32Array.from([0, 1, 0, 1]), features: new Float32Array(5) })).rejects.toThrow(InvalidInputError);
    const nan = new Float32Array(4 * DIM);
    nan[7] = NaN;
    await expect(trainTeacher({ ...one, labels: Int32Array.from([0, 1, 0, 1]), features: nan })).rejects.toThrow(/features\[7\]/);
  });

  it('distils a student that agrees with the teacher on > 90% of held-out points', async () => {
    // Labelled training rows plus unlabelled rows (label -1) drawn from the same clusters.
    const unl = clusters([100, 100, 100], 6);
    const n1 = train.labels.length;
    const n2 = unl.labels.length;
    const features = new Float32Array((n1 + n2) * DIM);
    features.set(train.features);
    features.set(unl.features, n1 * DIM);
    const labels = new Int32Array(n1 + n2).fill(-1);
    labels.set(train.labels);
    const t0 = performance.now();
    const epochs: number[] = [];
    const res = await distillStudent({
      features,
      labels,
      dim: DIM,
      numClasses: K,
      teacher,
      hidden: 8,
      epochs: 12,
      learningRate: 3e-3,
      seed: 8,
      onEpoch: async (e) => void epochs.push(e),
    });
    process.stdout.write(`student: ${n1 + n2} rows, 12 epochs in ${(performance.now() - t0).toFixed(0)} ms\n`);
    expect(epochs).toHaveLength(12);
    const meta = readHeadMetadata(res.model)!;
    expect(meta.kind).toBe('student');
    expect(meta.arch.hidden).toBe(8);
    const studentPred = argmaxRows(await predict(res.model, test.features, DIM), K);
    expect(accuracy(studentPred, teacherTestPred)).toBeGreaterThan(0.9);
    // JS divergence is bounded by ln 2 (times T^2 = 4) plus the hard term: the loss stays finite and small.
    expect(res.history[res.history.length - 1]!.loss).toBeLessThan(res.history[0]!.loss);
  });

  it('student resume gives bit-identical weights', async () => {
    const labels = train.labels.map((l, i) => (i % 3 === 0 ? -1 : l));
    const opts = { features: train.features, labels, dim: DIM, numClasses: K, teacher, hidden: 8, epochs: 4, learningRate: 3e-3, seed: 2 };
    let ck: SerializedModel | undefined;
    const full = await distillStudent({ ...opts, onEpoch: async (e, _l, w) => void (e === 2 ? (ck = await w()) : undefined) });
    const resumed = await distillStudent({ ...opts, resume: { epoch: 2, weights: ck! } });
    expect(resumed.model.weights.equals(full.model.weights)).toBe(true);
    await expect(distillStudent({ ...opts, hidden: 9, resume: { epoch: 2, weights: ck! } })).rejects.toThrow(ModelMismatchError);
  });

  it('student defaults come from the teacher: lr / 10 and 2x epochs', async () => {
    const small = clusters([20, 20, 20], 10);
    const t = await trainTeacher({ ...small, dim: DIM, numClasses: K, hidden: 4, epochs: 2, learningRate: 2e-3 });
    const s = await distillStudent({ ...small, dim: DIM, numClasses: K, teacher: t.model, hidden: 0 });
    const meta = readHeadMetadata(s.model)!;
    expect(meta.hyper['learningRate']).toBeCloseTo(2e-4, 10);
    expect(meta.hyper['epochs']).toBe(4);
    expect(s.history).toHaveLength(4);
    await expect(distillStudent({ ...small, dim: DIM, numClasses: K, teacher: t.model, labels: small.labels.map(() => -2) })).rejects.toThrow(
      InvalidInputError,
    );
  });
});

describe('fine-tuning on wasm', () => {
  it('is refused with a named error: wasm has no convolution gradients', async () => {
    const t = await trainTeacher({ features: train.features, dim: DIM, labels: train.labels, numClasses: K, epochs: 1, seed: 1 });
    const trunk = { inputShape: [DIM], names: [], vars: [], build: (x: never) => x, apply: (x: never) => x, restore: () => undefined };
    await expect(
      fineTuneStudent({
        labels: train.labels,
        numClasses: K,
        teacher: t.model,
        teacherProbs: await predict(t.model, train.features, DIM),
        trunk,
        trunkInputs: train.features,
        head: t.model,
        epochs: 1,
      }),
    ).rejects.toThrow(/wasm backend cannot fine-tune convolutions/);
  });
});

describe('cutmix', () => {
  it('pastes a box from b into a and lambda equals the fraction of a kept', () => {
    const W = 37;
    const H = 23;
    const a = { data: Buffer.alloc(W * H * 3, 0), width: W, height: H };
    const b = { data: Buffer.alloc(W * H * 3, 255), width: W, height: H };
    const rng = mulberry32(123);
    const lambdas: number[] = [];
    for (let trial = 0; trial < 200; trial++) {
      const r = cutmix(a, b, rng);
      let fromB = 0;
      let mixedPixels = 0;
      for (let p = 0; p < W * H; p++) {
        const [r0, g0, b0] = r.data.subarray(p * 3, p * 3 + 3);
        if (r0 !== g0 || g0 !== b0) mixedPixels++;
        if (r0 === 255) fromB++;
      }
      expect(mixedPixels).toBe(0); // whole pixels are copied, all channels
      expect(r.lambda).toBeCloseTo(1 - fromB / (W * H), 12);
      expect(r.box.width * r.box.height).toBe(fromB);
      // Pasted pixels are exactly the box.
      if (fromB > 0) {
        const { x, y, width, height } = r.box;
        expect(r.data[(y * W + x) * 3]).toBe(255);
        expect(r.data[((y + height - 1) * W + x + width - 1) * 3]).toBe(255);
      }
      lambdas.push(r.lambda);
    }
    expect(a.data.every((v) => v === 0)).toBe(true); // inputs untouched
    const mean = lambdas.reduce((s, x) => s + x, 0) / lambdas.length;
    expect(mean).toBeGreaterThan(0.5); // clipping only ever shrinks the box
    expect(mean).toBeLessThan(0.85);
    expect(Math.min(...lambdas)).toBeLessThan(0.2);
    expect(() => cutmix(a, { ...b, width: W + 1 }, rng)).toThrow(InvalidInputError);
    expect(Array.from(cutmixTarget(2, 0, 0.25, 3))).toEqual([0.75, 0, 0.25]);
  });
});

describe('evaluate', () => {
  it('computes frame and video metrics on a hand-made example', () => {
    // 3 classes: cat, dog, bird. Frames: (true, pred)
    // v1: cat->cat, cat->cat, cat->dog  (video: true cat; mean probs favour cat)
    // v2: dog->dog, dog->cat            (video: true dog; mean probs favour dog)
    // v3: cat->dog                      (video: true cat, pred dog)
    const oneHotish = (k: number, conf = 0.8): number[] => [0, 1, 2].map((j) => (j === k ? conf : (1 - conf) / 2));
    const rows = [oneHotish(0), oneHotish(0), oneHotish(1, 0.5), oneHotish(1, 0.9), oneHotish(0, 0.6), oneHotish(1)];
    const probs = Float32Array.from(rows.flat());
    const labels = Int32Array.from([0, 0, 0, 1, 1, 0]);
    const res = evaluate({ probs, numClasses: 3, labels, labelNames: ['cat', 'dog', 'bird'], videoIds: ['v1', 'v1', 'v1', 'v2', 'v2', 'v3'] });
    expect(res.frames.n).toBe(6);
    expect(res.frames.confusion).toEqual([
      [2, 2, 0],
      [1, 1, 0],
      [0, 0, 0],
    ]);
    expect(res.frames.accuracy).toBeCloseTo(3 / 6);
    expect(res.frames.perLabel['cat']).toEqual({ precision: 2 / 3, recall: 2 / 4, f1: (2 * (2 / 3) * 0.5) / (2 / 3 + 0.5), support: 4 });
    expect(res.frames.perLabel['dog']!.precision).toBeCloseTo(1 / 3);
    expect(res.frames.perLabel['dog']!.recall).toBeCloseTo(1 / 2);
    expect(res.frames.perLabel['bird']).toEqual({ precision: null, recall: null, f1: null, support: 0 });
    expect(res.videos.n).toBe(3);
    expect(res.videos.confusion).toEqual([
      [1, 1, 0],
      [0, 1, 0],
      [0, 0, 0],
    ]);
    expect(res.videos.accuracy).toBeCloseTo(2 / 3);
    expect(res.videos.perLabel['cat']).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    expect(res.videos.perLabel['dog']).toEqual({ precision: 0.5, recall: 1, f1: 2 / 3, support: 1 });
    expect(res.videos.macroF1).toBeCloseTo(2 / 3);
    expect(JSON.stringify(res)).not.toContain('NaN');
  });

  it('handles empty input and validates lengths', () => {
    const res = evaluate({ probs: new Float32Array(0), numClasses: 2, labels: new Int32Array(0), labelNames: ['a', 'b'], videoIds: [] });
    expect(res.frames.accuracy).toBeNull();
    expect(res.videos.n).toBe(0);
    expect(() => evaluate({ probs: new Float32Array(3), numClasses: 2, labels: new Int32Array(2), labelNames: ['a', 'b'], videoIds: ['x', 'y'] })).toThrow(
      InvalidInputError,
    );
    expect(() => evaluate({ probs: new Float32Array(4), numClasses: 2, labels: new Int32Array(2), labelNames: ['a', 'a'], videoIds: ['x', 'y'] })).toThrow(
      InvalidInputError,
    );
  });
});

describe('the teacher whole-backbone fine-tuning: when and how fast', () => {
  it('defaults to the practitioners setting on the GPU only', () => {
    expect(TeacherParams.parse({}).fineTune).toEqual({
      mode: 'auto',
      backbone: 'efficientnet_lite2',
      epochs: 30,
      batchSize: 256,
      learningRate: 0.01,
      momentum: 0.9,
      cutmixProbability: 0.5,
    });
    expect(wholeBackboneTeacher('auto', { backend: 'tensorflow', native: { gpu: true } })).toBe(true);
    expect(wholeBackboneTeacher('auto', { backend: 'tensorflow', native: { gpu: false } })).toBe(false);
    expect(wholeBackboneTeacher('auto', { backend: 'wasm' })).toBe(false);
    expect(wholeBackboneTeacher('on', { backend: 'tensorflow', native: { gpu: false } })).toBe(true);
    expect(wholeBackboneTeacher('off', { backend: 'tensorflow', native: { gpu: true } })).toBe(false);
  });

  it('refuses "on" where convolutions cannot be trained, naming the backend and the way out', () => {
    expect(() => wholeBackboneTeacher('on', { backend: 'wasm' })).toThrow(InvalidInputError);
    expect(() => wholeBackboneTeacher('on', { backend: 'wasm' })).toThrow(/training backend is wasm.*infra\/install.sh/);
  });

  it('decays the SGD learning rate by a cosine from its peak to 0; Adam keeps it', () => {
    const sgd = { kind: 'sgd', momentum: 0.9, schedule: 'cosine' } as const;
    expect(learningRateAt(sgd, 0.01, 0, 100)).toBeCloseTo(0.01, 12);
    expect(learningRateAt(sgd, 0.01, 50, 100)).toBeCloseTo(0.005, 12);
    expect(learningRateAt(sgd, 0.01, 99, 100)).toBeLessThan(1e-5);
    expect(learningRateAt({ kind: 'sgd', momentum: 0.9, schedule: 'constant' }, 0.01, 99, 100)).toBe(0.01);
    expect(learningRateAt({ kind: 'adam' }, 0.001, 50, 100)).toBe(0.001);
  });
});
