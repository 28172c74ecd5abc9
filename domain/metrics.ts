/**
 * Evaluation of a classifier on frames and on whole videos.
 */
import { InvalidInputError, type Evaluation, type LabelMetrics, type LevelMetrics } from '../contracts';

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Row-major probabilities, `n * numClasses`. */
  probs: Float32Array;
  numClasses: number;
  /** True class index of each frame, in [0, numClasses). */
  labels: Int32Array;
  /** Name of each class; `labelNames.length === numClasses`, distinct. */
  labelNames: string[];
  /** Video id of each frame (length n). */
  videoIds: string[];
}

/**
 * Frame-level and video-level classification metrics. Argmax ties go to the lowest class index.
 *
 * @throws InvalidInputError on inconsistent lengths, labels out of range, or duplicate/missing label names.
 */
export function evaluate(opts: EvaluateOptions): Evaluation {
  const { probs, numClasses: k, labels, labelNames, videoIds } = opts;
  const n = labels.length;
  if (!Number.isInteger(k) || k < 1) throw new InvalidInputError(`numClasses must be a positive integer, got ${k}`);
  if (probs.length !== n * k) throw new InvalidInputError(`probs has ${probs.length} values, expected ${n} x ${k}`);
  if (videoIds.length !== n) throw new InvalidInputError(`videoIds has ${videoIds.length} entries, expected ${n}`);
  if (labelNames.length !== k || new Set(labelNames).size !== k) {
    throw new InvalidInputError(`labelNames must be ${k} distinct names, got ${JSON.stringify(labelNames)}`);
  }
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= k) throw new InvalidInputError(`label ${i} is ${l}, not in [0, ${k})`);
  });

  const framePred = new Int32Array(n);
  for (let i = 0; i < n; i++) framePred[i] = argmax(probs, i * k, k);
  const frames = levelMetrics(labels, framePred, k, labelNames);

  // Videos, in order of first appearance.
  const index = new Map<string, number>();
  const sums: Float64Array[] = [];
  const votes: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    const id = videoIds[i] as string;
    let v = index.get(id);
    if (v === undefined) {
      v = sums.length;
      index.set(id, v);
      sums.push(new Float64Array(k));
      votes.push(new Int32Array(k));
    }
    const s = sums[v]!;
    for (let j = 0; j < k; j++) s[j] = (s[j] as number) + (probs[i * k + j] as number);
    votes[v]![labels[i] as number]! += 1;
  }
  const vTrue = new Int32Array(sums.length);
  const vPred = new Int32Array(sums.length);
  for (let v = 0; v < sums.length; v++) {
    vTrue[v] = argmax(votes[v]!, 0, k);
    vPred[v] = argmax(sums[v]!, 0, k); // argmax of the sum = argmax of the mean
  }
  return { frames, videos: levelMetrics(vTrue, vPred, k, labelNames) };
}

function argmax(a: ArrayLike<number>, off: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if ((a[off + j] as number) > (a[off + best] as number)) best = j;
  return best;
}

function levelMetrics(truth: Int32Array, pred: Int32Array, k: number, names: string[]): LevelMetrics {
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  truth.forEach((t, i) => {
    const p = pred[i] as number;
    confusion[t]![p]! += 1;
    if (t === p) correct++;
  });
  const perLabel: Record<string, LabelMetrics> = {};
  const f1s: number[] = [];
  for (let c = 0; c < k; c++) {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted === 0 ? null : tp / predicted;
    const recall = support === 0 ? null : tp / support;
    const f1 = precision === null || recall === null ? null : precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    if (f1 !== null) f1s.push(f1);
    perLabel[names[c] as string] = { precision, recall, f1, support };
  }
  return {
    n: truth.length,
    accuracy: truth.length === 0 ? null : correct / truth.length,
    macroF1: f1s.length === 0 ? null : f1s.reduce((a, b) => a + b, 0) / f1s.length,
    perLabel,
    confusion,
  };
}
