/**
 * The teacher with its whole backbone fine-tuned: every convolution and batch
 * normalisation of one EfficientNet-Lite trained with a linear head on the frames' pixels,
 * in the practitioners' setting (`TeacherFineTuneParams`: SGD with momentum 0.9 at 0.01
 * decayed by a cosine, batch 256, about 30 epochs, CutMix on the pixels, label smoothing,
 * class-balanced batches). It is the GPU worker's teacher; the CPU trains the same code in
 * a tiny configuration (`test/helpers/native-training.ts`).
 *
 * Batch normalisation keeps its ImageNet statistics (inference mode) while its scale and
 * offset train, as in the student's top fine-tuning (`trunk.ts`): the labelled sets here
 * are small and class-balanced batches would skew running statistics.
 */
import type * as TfModule from '@tensorflow/tfjs';
import { DatasetError, InvalidInputError, type TeacherFineTuneParams } from '../../contracts';
import { cutmix } from '../../domain/backbone/cutmix';
import type { Logger } from '../../lib/logger';
import { deriveSeed, mulberry32, permutation } from '../../lib/rng';
import type { Tf } from '../../lib/tf';
import { crossFit } from './crossfit';
import type { HeadArch } from './head-model';
import { runTraining, type OnEpoch, type ResumeFrom, type TrainResult } from './loop';
import { softTargetCrossEntropy } from './losses';
import { deserializeModel } from './serialize';
import { calibratedOnFolds, type FitTeacherResult } from './teacher';
import { hasConvolutionGradients, type SplitBackbone } from './trunk';

/** Seed stream of the per-step CutMix draws (see `lib/rng.ts` `deriveSeed`). */
const STREAM_CUTMIX = 11;

/**
 * Whether the train step fine-tunes the teacher's whole backbone: `on` always, `off`
 * never, `auto` when the training backend is TensorFlow on a GPU (tfjs-node-gpu).
 *
 * @throws InvalidInputError (not retried) when `on` and the backend cannot train convolutions (wasm).
 */
export function wholeBackboneTeacher(mode: TeacherFineTuneParams['mode'], rt: { backend: string; native?: { gpu: boolean } }): boolean {
  if (mode === 'on' && !hasConvolutionGradients(rt.backend)) {
    throw new InvalidInputError(
      `teacher.fineTune.mode is "on" but the training backend is ${rt.backend}, which cannot train convolutions (install tfjs-node with infra/install.sh, or tfjs-node-gpu with infra/install-gpu.sh)`,
    );
  }
  return mode === 'on' || (mode === 'auto' && rt.native?.gpu === true && hasConvolutionGradients(rt.backend));
}

/** Options of {@link fineTuneTeacher}. */
export interface FineTuneTeacherOptions {
  /** The backbone split `whole` (`loadSplitBackbone(tf, name, { at: 'whole' })`); its weights are trained in place. */
  bb: SplitBackbone;
  /** Each row's image, `S * S * 3` RGB bytes prepared for the backbone (`decodeForBackbone`). */
  pixels: Uint8Array[];
  /** Class index of each row, in [0, numClasses). */
  labels: Int32Array;
  numClasses: number;
  /** The schedule (epochs, batch, learning rate, momentum, CutMix share). */
  params: TeacherFineTuneParams;
  /** Label smoothing epsilon (Szegedy et al. 2016). */
  labelSmoothing: number;
  /** Class-balanced batches (with replacement) instead of shuffled epochs. */
  classBalanced: boolean;
  seed: number;
  resume?: ResumeFrom;
  onEpoch?: OnEpoch;
  logger?: Logger;
}

/**
 * Fine-tune the whole backbone with a linear head: soft-target cross-entropy on
 * label-smoothed targets, SGD with momentum and a cosine decay (`loop.ts`), and on a
 * `cutmixProbability` share of the batches CutMix (Yun et al. 2019): each image gets a box
 * of a partner from a random permutation of its batch, its target `lambda y_a + (1 - lambda) y_b`.
 *
 * @returns a model from pixels (`[n, S, S, 3]`, values in [0, 255]) to probabilities, with
 *   the backbone's layers (`stem_conv` ... `features`) and the head; and the loss per epoch.
 * @throws InvalidInputError when the backend cannot train convolutions, or the rows disagree.
 * @throws DatasetError when fewer than two classes are present.
 */
export async function fineTuneTeacher(o: FineTuneTeacherOptions): Promise<TrainResult> {
  const { bb, pixels, labels, numClasses: k, params: p } = o;
  const tf: Tf = bb.tf;
  if (!hasConvolutionGradients(tf.getBackend())) {
    throw new InvalidInputError(
      `the ${tf.getBackend()} backend cannot fine-tune convolutions (no Conv2DBackpropFilter); install tfjs-node (infra/install.sh) or tfjs-node-gpu, or set teacher.fineTune.mode "off"`,
    );
  }
  const [s, , c] = bb.trunk.inputShape as [number, number, number];
  const per = s * s * c;
  if (pixels.length !== labels.length) throw new InvalidInputError(`${pixels.length} images for ${labels.length} labels`);
  pixels.forEach((px, i) => {
    if (px.length !== per) throw new InvalidInputError(`image ${i} has ${px.length} bytes, the ${bb.name} input is ${s} x ${s} x ${c} = ${per}`);
  });
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= k) throw new InvalidInputError(`label ${i} is ${l}, expected a class index in [0, ${k})`);
  });
  if (new Set(labels).size < 2) throw new DatasetError(`need at least two distinct labels, got ${new Set(labels).size}`);
  const eps = o.labelSmoothing;
  const on = 1 - eps + eps / k;
  const off = eps / k;
  const arch: HeadArch = { dim: bb.net.weights.index.architecture.headFilters, hidden: 0, numClasses: k, dropout: 0 };
  o.logger?.info({ ...p, backbone: bb.name, rows: labels.length, trunkParams: bb.trunk.names.length }, 'fine-tuning the whole teacher backbone');
  return runTraining(tf, {
    kind: 'teacher',
    arch,
    rows: labels.length,
    classes: o.classBalanced ? labels : null,
    epochs: p.epochs,
    batchSize: p.batchSize,
    learningRate: p.learningRate,
    optimizer: { kind: 'sgd', momentum: p.momentum, schedule: 'cosine' },
    seed: o.seed,
    hyper: {
      learningRate: p.learningRate,
      epochs: p.epochs,
      batchSize: p.batchSize,
      momentum: p.momentum,
      cutmixProbability: p.cutmixProbability,
      labelSmoothing: eps,
      classBalanced: o.classBalanced,
      seed: o.seed,
      wholeBackbone: true,
    },
    trunk: bb.trunk,
    resume: o.resume,
    onEpoch: o.onEpoch,
    logger: o.logger,
    gather(idx, step) {
      const b = idx.length;
      const x = new Float32Array(b * per);
      const y = new Float32Array(b * k);
      const rng = mulberry32(deriveSeed(o.seed, STREAM_CUTMIX, step));
      const mix = p.cutmixProbability > 0 && b > 1 && rng() < p.cutmixProbability;
      const partner = mix ? permutation(rng, b) : null;
      for (let i = 0; i < b; i++) {
        const a = idx[i]!;
        let lambda = 1;
        let img: Uint8Array = pixels[a]!;
        const j = partner ? idx[partner[i]!]! : a;
        if (partner && j !== a) {
          const r = cutmix(
            { data: Buffer.from(pixels[a]!.buffer, pixels[a]!.byteOffset, per), width: s, height: s, channels: c },
            { data: Buffer.from(pixels[j]!.buffer, pixels[j]!.byteOffset, per), width: s, height: s, channels: c },
            rng,
          );
          img = r.data;
          lambda = r.lambda;
        }
        x.set(img, i * per);
        for (let q = 0; q < k; q++) y[i * k + q] = off;
        y[i * k + labels[a]!]! += (on - off) * lambda;
        y[i * k + labels[j]!]! += (on - off) * (1 - lambda);
      }
      return { x, aux: [y] };
    },
    loss: (logits, [y]) => softTargetCrossEntropy(tf, logits, y!),
    auxShapes: [[k]],
  });
}

/**
 * Probabilities of a fine-tuned teacher (a {@link fineTuneTeacher} model) on images,
 * `batchSize` at a time: `pixels.length * numClasses`.
 */
export async function predictPixels(tf: Tf, model: TrainResult['model'], pixels: Uint8Array[], batchSize = 16): Promise<Float32Array> {
  const net = await deserializeModel(model);
  try {
    const shape = net.inputs[0]!.shape.slice(1) as number[];
    const per = shape.reduce((a, b) => a * b, 1);
    const k = net.outputs[0]!.shape.at(-1) as number;
    const out = new Float32Array(pixels.length * k);
    for (let start = 0; start < pixels.length; start += batchSize) {
      const batch = pixels.slice(start, start + batchSize);
      const input = new Float32Array(batch.length * per);
      batch.forEach((px, i) => input.set(px, i * per));
      const y = tf.tidy(() => net.predict(tf.tensor(input, [batch.length, ...shape])) as TfModule.Tensor);
      try {
        out.set((await y.data()) as Float32Array, start * k);
      } finally {
        y.dispose();
      }
      await new Promise((r) => setImmediate(r));
    }
    return out;
  } finally {
    net.dispose();
  }
}

/** Options of {@link fitWholeTeacher}. */
export interface FitWholeTeacherOptions extends Omit<FineTuneTeacherOptions, 'resume' | 'onEpoch'> {
  /** Video of each labelled row. */
  videoIds: string[];
  /** Folds of the cross-fitting by video (`TeacherParams.calibrationFolds`; < 2: none). */
  calibrationFolds: number;
  /** Unlabelled images of the training videos: cross-fitting predicts them too. */
  unlabeled?: { pixels: Uint8Array[]; videoIds: string[] };
  /** Checkpointing of the fit of `fold` (`null`: the final fit on every row). */
  checkpoints?: (fold: number | null) => Promise<{ resume?: ResumeFrom; onEpoch: OnEpoch }>;
  /** Each fold's out-of-fold probabilities kept (S3), so that a retried attempt skips the folds it has. */
  foldCache?: { get(fold: number): Promise<Float32Array | undefined>; put(fold: number, probs: Float32Array): Promise<void> };
  /** Called when a fold starts (heartbeat). */
  onFold?: (fold: number) => void;
}

/** What {@link fitWholeTeacher} returns: as `fitTeacher`'s. */
export type FitWholeTeacherResult = FitTeacherResult;

/**
 * The whole-backbone teacher as the train step makes it: {@link fineTuneTeacher} on every
 * labelled row; then, with `calibrationFolds` >= 2, once more per fold of videos (each
 * from the ImageNet weights again) for out-of-fold probabilities of every labelled and
 * unlabelled row, the video-level logit offsets chosen on them (`calibrate.ts`) and added
 * to the model's logits: the same cross-fitting as the head on features (`teacher.ts`).
 *
 * @throws as {@link fineTuneTeacher}.
 */
export async function fitWholeTeacher(o: FitWholeTeacherOptions): Promise<FitWholeTeacherResult> {
  const { bb, numClasses: k } = o;
  const tf = bb.tf;
  // Every fit starts from the backbone's pretrained weights.
  const initial = bb.trunk.vars.map((v) => tf.clone(v));
  const reset = () => bb.trunk.vars.forEach((v, i) => v.assign(initial[i]!));
  try {
    const final = await fineTuneTeacher({ ...o, ...(await o.checkpoints?.(null)) });
    if (o.calibrationFolds < 2) return { ...final, calibration: null, outOfFold: null };
    const allPixels = [...o.pixels, ...(o.unlabeled?.pixels ?? [])];
    const videoIds = [...o.videoIds, ...(o.unlabeled?.videoIds ?? [])];
    const allLabels = new Int32Array(allPixels.length).fill(-1);
    allLabels.set(o.labels);
    const cf = await crossFit<Float32Array>({
      videoIds,
      labels: allLabels,
      numClasses: k,
      folds: o.calibrationFolds,
      seed: o.seed,
      train: async (rows, fold) => {
        const cached = await o.foldCache?.get(fold);
        if (cached) return cached;
        o.onFold?.(fold);
        reset();
        const r = await fineTuneTeacher({
          ...o,
          pixels: Array.from(rows, (i) => allPixels[i]!),
          labels: Int32Array.from(rows, (i) => allLabels[i]!),
          seed: deriveSeed(o.seed, STREAM_CUTMIX, 1_000_000 + fold),
          ...(await o.checkpoints?.(fold)),
        });
        const held = new Set(Array.from(rows, (i) => videoIds[i]!));
        const out = Array.from(allLabels.keys()).filter((i) => !held.has(videoIds[i]!));
        const probs = await predictPixels(
          tf,
          r.model,
          out.map((i) => allPixels[i]!),
        );
        const full = new Float32Array(allPixels.length * k).fill(NaN);
        out.forEach((row, j) => full.set(probs.subarray(j * k, (j + 1) * k), row * k));
        await o.foldCache?.put(fold, full);
        return full;
      },
      predict: async (full, rows) => {
        const out = new Float32Array(rows.length * k);
        rows.forEach((r, j) => out.set(full.subarray(r * k, (r + 1) * k), j * k));
        return out;
      },
    });
    return await calibratedOnFolds(final, cf, o.calibrationFolds, videoIds, allLabels, k, o.logger);
  } finally {
    tf.dispose(initial);
  }
}
