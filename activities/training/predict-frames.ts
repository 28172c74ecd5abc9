/**
 * Model pre-annotations for human labelling: the label's published student (one image
 * model: frame in, class probabilities out) predicts the run's representatives, and the predictions go to S3 for the labelling activities to
 * read (the labelling domain never loads a model).
 */

/**
 * Top class and margin per row of an `n * k` probability matrix.
 *
 * @returns per row: the index of the most probable class, its probability, and its lead over the runner-up (0..1).
 */
export function topAndMargin(probs: Float32Array, k: number): Array<{ index: number; score: number; margin: number }> {
  const out: Array<{ index: number; score: number; margin: number }> = [];
  for (let i = 0; i < probs.length / k; i++) {
    let best = -1;
    let p1 = -Infinity;
    let p2 = -Infinity;
    for (let j = 0; j < k; j++) {
      const p = probs[i * k + j]!;
      if (p > p1) {
        p2 = p1;
        p1 = p;
        best = j;
      } else if (p > p2) p2 = p;
    }
    out.push({ index: best, score: p1, margin: k > 1 ? p1 - p2 : 1 });
  }
  return out;
}
