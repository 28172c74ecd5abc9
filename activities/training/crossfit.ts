/**
 * Cross-fitting by video: out-of-fold predictions for every row of the training videos,
 * each row predicted by a model that saw none of its video's frames (Wolpert 1992,
 * "Stacked generalization"; the video is the unit, as in every evaluation here: frames of
 * one video are near-duplicates of each other).
 *
 * The teacher uses them twice: to calibrate its video-level decision (`calibrate.ts`) on
 * videos it did not train on, and as the student's distillation targets on the training
 * frames. A teacher's predictions on its own training frames repeat their (weak) labels,
 * so distilling from them passes on little beyond the labels; out-of-fold predictions carry
 * what the teacher really knows of frames like them.
 */
import { createHash } from 'node:crypto';
import { InvalidInputError } from '../../contracts';
import { shiftProbabilities, videoLogitOffsets, type VideoCalibration } from './calibrate';

/** Assign videos to `k` folds, stratified by class: within a class, videos ordered by sha256(seed, id), then dealt round-robin. */
export function videoFolds(videoClass: Map<string, number>, k: number, seed: number): Map<string, number> {
  const rank = (id: string) => createHash('sha256').update(`${seed}:fold:${id}`).digest('hex');
  const byClass = new Map<number, string[]>();
  for (const [v, c] of videoClass) byClass.set(c, [...(byClass.get(c) ?? []), v]);
  const fold = new Map<string, number>();
  let offset = 0;
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const ids = byClass.get(c)!.sort((a, b) => rank(a).localeCompare(rank(b)));
    ids.forEach((v, i) => fold.set(v, (offset + i) % k));
    offset += ids.length;
  }
  return fold;
}

/** Each video's class: the majority of its labelled rows (ties: the smaller class index). Videos without a labelled row are absent. */
export function videoClasses(videoIds: string[], labels: Int32Array): Map<string, number> {
  const votes = new Map<string, Map<number, number>>();
  labels.forEach((l, i) => {
    if (l < 0) return;
    const m = votes.get(videoIds[i]!) ?? new Map<number, number>();
    m.set(l, (m.get(l) ?? 0) + 1);
    votes.set(videoIds[i]!, m);
  });
  const out = new Map<string, number>();
  for (const [v, m] of votes) out.set(v, [...m.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0]);
  return out;
}

/** What {@link crossFit} needs: the rows and how to train and predict on a subset. */
export interface CrossFitInput<M> {
  /** Video of each row. */
  videoIds: string[];
  /** Class of each row, -1 for unlabelled rows (predicted, never trained on). */
  labels: Int32Array;
  numClasses: number;
  /** Folds (2..10). */
  folds: number;
  seed: number;
  /** Train on the labelled rows given (fold `fold`'s complement). */
  train(rows: Int32Array, fold: number): Promise<M>;
  /** `rows.length * numClasses` probabilities of the rows given. */
  predict(model: M, rows: Int32Array): Promise<Float32Array>;
  /** Called after each fold (heartbeat, checkpoint). */
  onFold?: (fold: number, done: number) => void;
}

/** Out-of-fold probabilities and the calibration chosen on them. */
export interface CrossFitResult {
  /** `n * numClasses` out-of-fold probabilities (rows of videos without a labelled row: NaN). */
  probs: Float32Array;
  /** Fold of each video. */
  foldOf: Map<string, number>;
  /** Folds actually trained (a fold whose complement lacks a class is skipped: its rows stay NaN). */
  trainedFolds: number;
}

/**
 * Out-of-fold probabilities of every row of the videos that have a labelled row.
 *
 * @throws InvalidInputError when `folds` is out of range or the lengths disagree.
 */
export async function crossFit<M>(input: CrossFitInput<M>): Promise<CrossFitResult> {
  const { videoIds, labels, numClasses: k, folds } = input;
  const n = labels.length;
  if (videoIds.length !== n) throw new InvalidInputError(`crossFit: ${videoIds.length} video ids for ${n} rows`);
  if (!Number.isInteger(folds) || folds < 2 || folds > 10) throw new InvalidInputError(`crossFit: folds must be in 2..10, got ${folds}`);
  const vclass = videoClasses(videoIds, labels);
  const foldOf = videoFolds(vclass, folds, input.seed);
  const probs = new Float32Array(n * k).fill(NaN);
  let trainedFolds = 0;
  for (let f = 0; f < folds; f++) {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < n; i++) {
      const fo = foldOf.get(videoIds[i]!);
      if (fo === undefined) continue;
      if (fo === f) test.push(i);
      else if (labels[i]! >= 0) train.push(i);
    }
    if (!test.length || new Set(train.map((i) => labels[i])).size < 2) continue;
    const model = await input.train(Int32Array.from(train), f);
    const p = await input.predict(model, Int32Array.from(test));
    test.forEach((row, j) => probs.set(p.subarray(j * k, (j + 1) * k), row * k));
    trainedFolds++;
    input.onFold?.(f, trainedFolds);
  }
  return { probs, foldOf, trainedFolds };
}

/**
 * Choose the video-level logit offsets on out-of-fold probabilities (`calibrate.ts`),
 * over the rows that have them.
 *
 * @returns the calibration, and the out-of-fold probabilities with the offsets applied.
 */
export function calibrateOnFolds(
  cf: CrossFitResult,
  videoIds: string[],
  labels: Int32Array,
  k: number,
): { calibration: VideoCalibration; shifted: Float32Array } {
  const vclass = videoClasses(videoIds, labels);
  const videos = [...vclass.keys()].sort();
  const vIndex = new Map(videos.map((v, i) => [v, i]));
  const rows: number[] = [];
  for (let i = 0; i < labels.length; i++) if (vIndex.has(videoIds[i]!) && Number.isFinite(cf.probs[i * k]!)) rows.push(i);
  const probs = new Float32Array(rows.length * k);
  rows.forEach((r, j) => probs.set(cf.probs.subarray(r * k, (r + 1) * k), j * k));
  const calibration = videoLogitOffsets(
    probs,
    k,
    Int32Array.from(rows, (r) => vIndex.get(videoIds[r]!)!),
    Int32Array.from(videos, (v) => vclass.get(v)!),
  );
  return { calibration, shifted: shiftProbabilities(cf.probs, k, calibration.offsets) };
}
