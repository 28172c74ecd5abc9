/**
 * Training losses of the heads, as tfjs ops on logits (so gradients flow through them),
 * and the softened teacher targets of distillation.
 */
import type * as TfModule from '@tensorflow/tfjs';
import type { Tf } from '../../lib/tf';

/** Floor of probabilities before a logarithm. */
export const LOG_EPS = 1e-12;

/**
 * Cross-entropy with soft targets: `-mean_b sum_k y_bk log softmax(z_b)_k`. With
 * label-smoothed one-hot rows it is the label-smoothing loss of Szegedy et al. 2016
 * ("Rethinking the Inception Architecture for Computer Vision", section 7); with CutMix
 * rows (area-weighted pairs of one-hot targets) the CutMix loss of Yun et al. 2019.
 *
 * @param logits `[b, k]`.
 * @param targets `[b, k]`, each row a distribution.
 * @returns the batch mean, nats.
 */
export function softTargetCrossEntropy(tf: Tf, logits: TfModule.Tensor2D, targets: TfModule.Tensor): TfModule.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as TfModule.Scalar;
}

/**
 * Distillation loss of the student: `T^2 * JS(p || softmax(z / T))`, the Jensen-Shannon
 * divergence (Lin 1991, "Divergence measures based on the Shannon entropy") between the
 * softened teacher distribution `p` and the student's softened distribution, scaled by
 * T^2 to keep gradient magnitudes comparable across temperatures (Hinton et al. 2015,
 * "Distilling the Knowledge in a Neural Network").
 *
 * @param logits student logits `[b, k]`.
 * @param p softened teacher distribution `[b, k]` ({@link softenProbabilities}).
 * @param temperature T > 0.
 * @returns the batch mean, nats.
 */
export function jensenShannonDistillation(tf: Tf, logits: TfModule.Tensor2D, p: TfModule.Tensor, temperature: number): TfModule.Scalar {
  const T = temperature;
  const q = tf.softmax(tf.div(logits, T));
  const mix = tf.mul(tf.add(p, q), 0.5);
  const logMix = tf.log(tf.maximum(mix, LOG_EPS));
  const klP = tf.sum(tf.mul(p, tf.sub(tf.log(tf.maximum(p, LOG_EPS)), logMix)), 1);
  const klQ = tf.sum(tf.mul(q, tf.sub(tf.logSoftmax(tf.div(logits, T)), logMix)), 1);
  return tf.mul(tf.mean(tf.add(klP, klQ)), 0.5 * T * T) as TfModule.Scalar;
}

/**
 * Distillation loss of Hinton et al. 2015 ("Distilling the Knowledge in a Neural
 * Network"): `T^2 * KL(p || softmax(z / T))`, the Kullback-Leibler divergence from the
 * softened teacher distribution `p` to the student's softened distribution.
 *
 * @param logits student logits `[b, k]`.
 * @param p softened teacher distribution `[b, k]`.
 * @returns the batch mean, nats.
 */
export function kullbackLeiblerDistillation(tf: Tf, logits: TfModule.Tensor2D, p: TfModule.Tensor, temperature: number): TfModule.Scalar {
  const T = temperature;
  const kl = tf.sum(tf.mul(p, tf.sub(tf.log(tf.maximum(p, LOG_EPS)), tf.logSoftmax(tf.div(logits, T)))), 1);
  return tf.mul(tf.mean(kl), T * T) as TfModule.Scalar;
}

/**
 * Hard-label cross-entropy at temperature 1 over the labelled rows of a batch only.
 *
 * @param onehot `[b, k]` one-hot rows (all zero for unlabelled rows).
 * @param mask `[b]`: 1 for labelled rows, 0 for unlabelled.
 * @returns the mean over labelled rows (0 when the batch has none), nats.
 */
export function maskedCrossEntropy(tf: Tf, logits: TfModule.Tensor2D, onehot: TfModule.Tensor, mask: TfModule.Tensor): TfModule.Scalar {
  const ce = tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1));
  return tf.div(tf.sum(tf.mul(ce, mask)), tf.maximum(tf.sum(mask), 1)) as TfModule.Scalar;
}

/**
 * The teacher's distribution softened at temperature T, computed from its output
 * probabilities: `softmax(log p / T) = p^(1/T) / sum p^(1/T)`, exact because softmax is
 * invariant to the constant lost with the logits.
 *
 * @param probs `n * k` probabilities, row-major.
 * @returns `n * k` softened probabilities (each row sums to 1).
 */
export function softenProbabilities(probs: Float32Array, k: number, temperature: number): Float32Array {
  const n = probs.length / k;
  const soft = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let j = 0; j < k; j++) {
      const v = Math.pow(Math.max(probs[i * k + j]!, LOG_EPS), 1 / temperature);
      soft[i * k + j] = v;
      z += v;
    }
    for (let j = 0; j < k; j++) soft[i * k + j] = soft[i * k + j]! / z;
  }
  return soft;
}
