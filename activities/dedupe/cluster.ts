/** One near-duplicate cluster: row indices into the vector matrix. */
export interface Cluster {
  /** Row of the representative (the first member in priority order). */
  representative: number;
  /** All rows, representative first. */
  members: number[];
}

/**
 * Leader clustering of L2-normalised vectors on cosine similarity.
 *
 * Rows are visited in `order` (highest priority first, e.g. sharpest frame first);
 * a row joins the most similar existing leader when the cosine similarity is at least
 * `threshold`, else it becomes a new leader. Each leader is its cluster's
 * representative. Cost O(n * clusters * dim): fine for thousands of frames; a
 * nearest-neighbour index replaces the scan for millions.
 *
 * @param vectors n * dim row-major, rows L2-normalised.
 * @param threshold cosine similarity in [-1, 1].
 * @param order a permutation of 0..n-1 (default: row order).
 */
export function leaderCluster(vectors: Float32Array, dim: number, threshold: number, order?: number[]): Cluster[] {
  const n = vectors.length / dim;
  if (!Number.isInteger(n)) throw new RangeError(`vectors length ${vectors.length} is not a multiple of dim ${dim}`);
  const visit = order ?? Array.from({ length: n }, (_, i) => i);
  const clusters: Cluster[] = [];
  for (const row of visit) {
    const off = row * dim;
    let best = -1;
    let bestSim = -Infinity;
    for (let c = 0; c < clusters.length; c++) {
      const lo = clusters[c]!.representative * dim;
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += vectors[off + d]! * vectors[lo + d]!;
      if (dot > bestSim) {
        bestSim = dot;
        best = c;
      }
    }
    if (best >= 0 && bestSim >= threshold) clusters[best]!.members.push(row);
    else clusters.push({ representative: row, members: [row] });
  }
  return clusters;
}
