/**
 * Synthetic near-duplicate clusters with known ground truth, for the clustering tests and
 * the dedupe benchmark.
 *
 * Each cluster has a centre: a unit vector that shares a common component with every other
 * centre (like CNN features, which are all non-negative and correlated: cosine between
 * unrelated centres about 0.4) plus its own random direction. Its 1..`maxSize` members
 * (uniform) are the centre plus isotropic noise of relative size 0.10..0.22 (uniform per
 * cluster), normalised: member-member cosine 0.95..0.99, above the default threshold (0.93),
 * and far above any cross-cluster pair (< 0.6). Rows are stored cluster by cluster, as
 * frames of one shot are.
 */
export interface SyntheticClusters {
  /** n * dim floats, rows L2-normalised. */
  vectors: Float32Array;
  dim: number;
  /** Ground-truth cluster of each row. */
  truth: Int32Array;
  clusters: number;
}

/** Generate `n` rows (deterministic for a seed; about 10 s per million rows of dim 1280). */
export function syntheticClusters(n: number, dim: number, seed = 1, maxSize = 19): SyntheticClusters {
  let s = (seed * 2654435761) >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  // Sum of three uniforms, scaled to unit variance: close enough to a Gaussian in high dimension.
  const noise = () => (rnd() + rnd() + rnd() - 1.5) * 2;
  const vectors = new Float32Array(n * dim);
  const truth = new Int32Array(n);
  const common = new Float32Array(dim);
  for (let d = 0; d < dim; d++) common[d] = Math.abs(noise());
  const centre = new Float32Array(dim);
  const isq = 1 / Math.sqrt(dim);
  let row = 0;
  let c = 0;
  while (row < n) {
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      centre[d] = (0.8 * common[d]! + noise()) * isq;
      norm += centre[d]! * centre[d]!;
    }
    norm = 1 / Math.sqrt(norm);
    for (let d = 0; d < dim; d++) centre[d]! *= norm;
    const size = 1 + Math.floor(rnd() * maxSize);
    const sigma = (0.1 + 0.12 * rnd()) * isq;
    for (let k = 0; k < size && row < n; k++, row++) {
      const o = row * dim;
      let q = 0;
      for (let d = 0; d < dim; d++) {
        const x = centre[d]! + sigma * noise();
        vectors[o + d] = x;
        q += x * x;
      }
      q = 1 / Math.sqrt(q);
      for (let d = 0; d < dim; d++) vectors[o + d]! *= q;
      truth[row] = c;
    }
    c++;
  }
  return { vectors, dim, truth, clusters: c };
}

/**
 * Agreement of two clusterings of the same rows: the share of rows whose cluster is the
 * same set of rows in both (a row counts only when its whole cluster matches exactly).
 */
export function clusterAgreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  const sizeA = new Map<number, number>();
  const sizeB = new Map<number, number>();
  const pair = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    sizeA.set(a[i]!, (sizeA.get(a[i]!) ?? 0) + 1);
    sizeB.set(b[i]!, (sizeB.get(b[i]!) ?? 0) + 1);
    const k = `${a[i]},${b[i]}`;
    pair.set(k, (pair.get(k) ?? 0) + 1);
  }
  let same = 0;
  for (let i = 0; i < n; i++) {
    const p = pair.get(`${a[i]},${b[i]}`)!;
    if (p === sizeA.get(a[i]!) && p === sizeB.get(b[i]!)) same++;
  }
  return n ? same / n : 1;
}
