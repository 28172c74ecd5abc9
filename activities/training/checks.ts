/** Validation of training inputs and hyper-parameters: every error names the option and the value. */
import { DatasetError, InvalidInputError } from '../../contracts';

/**
 * Check the rows shared by every head: `dim`, `numClasses`, `n` rows of finite features.
 *
 * @throws InvalidInputError on a bad dim, a features length that is not `n * dim`, a non-finite value.
 * @throws DatasetError when there are no rows or fewer than two classes.
 */
export function checkRows(features: Float32Array, dim: number, numClasses: number, n: number): void {
  if (!Number.isInteger(dim) || dim <= 0) throw new InvalidInputError(`dim must be a positive integer, got ${dim}`);
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new DatasetError(`need at least two classes, got numClasses=${numClasses}`);
  }
  if (n === 0) throw new DatasetError('no training rows');
  if (features.length !== n * dim) {
    throw new InvalidInputError(`features has ${features.length} values, expected ${n} rows x ${dim}`);
  }
  checkFinite(features, 'features');
}

/** @throws InvalidInputError naming the first hyper-parameter out of range. */
export function checkHyper(h: { hidden: number; epochs: number; batchSize: number; learningRate: number; dropout: number }): void {
  if (!Number.isInteger(h.hidden) || h.hidden < 0) throw new InvalidInputError(`hidden must be an integer >= 0, got ${h.hidden}`);
  if (!Number.isInteger(h.epochs) || h.epochs < 1) throw new InvalidInputError(`epochs must be an integer >= 1, got ${h.epochs}`);
  if (!Number.isInteger(h.batchSize) || h.batchSize < 1) {
    throw new InvalidInputError(`batchSize must be an integer >= 1, got ${h.batchSize}`);
  }
  if (!(h.learningRate > 0)) throw new InvalidInputError(`learningRate must be > 0, got ${h.learningRate}`);
  if (!(h.dropout >= 0 && h.dropout < 1)) throw new InvalidInputError(`dropout must be in [0, 1), got ${h.dropout}`);
}

/** @throws InvalidInputError naming the first non-finite entry of `a`. */
export function checkFinite(a: Float32Array, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new InvalidInputError(`${what}[${i}] is ${a[i]}`);
  }
}

/** Index of the largest of the `k` values of row `row` (ties: the lowest index). */
export function argmaxRow(a: Float32Array, row: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (a[row * k + j]! > a[row * k + best]!) best = j;
  return best;
}
