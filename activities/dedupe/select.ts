/**
 * Choosing frames once clusters are known: one representative per cluster, and a label
 * budget of mutually distinct representatives.
 */
import { rowDot } from './ann';

/** Image quality of a frame, as measured at extraction (see `activities/frames/extract.ts`). */
export interface FrameQuality {
  /** Variance of the Laplacian of the luma (higher is sharper). */
  sharpness: number;
  /** Mean luma, 0..255. */
  brightness: number;
}

/** Weights of {@link representativeScore}'s terms (they sum to 1). */
export const REPRESENTATIVE_WEIGHTS = { sharpness: 0.5, centrality: 0.3, exposure: 0.2 } as const;

/**
 * Score of a cluster member as its representative, in [0, 1]:
 * 0.5 * sharpness rank + 0.3 * centrality + 0.2 * exposure, where
 * - sharpness rank is the member's rank by variance of the Laplacian within the cluster,
 *   scaled to [0, 1] (1 = sharpest; ranks, not raw values, because the variance of the
 *   Laplacian is not comparable across scenes);
 * - centrality is the cosine similarity to the cluster's mean embedding, scaled to [0, 1]
 *   within the cluster (1 = most central: the frame most like the others);
 * - exposure is 1 - |mean luma - 128| / 128 (1 = mid-grey mean, 0 = black or white).
 */
export function representativeScore(sharpRank: number, centrality: number, brightness: number): number {
  const exposure = 1 - Math.min(1, Math.abs(brightness - 128) / 128);
  return REPRESENTATIVE_WEIGHTS.sharpness * sharpRank + REPRESENTATIVE_WEIGHTS.centrality * centrality + REPRESENTATIVE_WEIGHTS.exposure * exposure;
}

/**
 * Pick each cluster's representative by {@link representativeScore}.
 *
 * @param vectors n * dim row-major, rows L2-normalised.
 * @param members per cluster, its rows (non-empty).
 * @param quality quality of each row (index = row).
 * @returns per cluster, the chosen row (ties: the lowest row).
 */
export function chooseRepresentatives(vectors: Float32Array, dim: number, members: number[][], quality: FrameQuality[]): number[] {
  return members.map((rows) => {
    if (rows.length === 1) return rows[0]!;
    const mean = new Float32Array(dim);
    for (const r of rows) for (let d = 0; d < dim; d++) mean[d]! += vectors[r * dim + d]!;
    const cos = rows.map((r) => {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += vectors[r * dim + d]! * mean[d]!;
      return dot;
    });
    const lo = Math.min(...cos);
    const span = Math.max(...cos) - lo;
    const bySharp = rows.map((_, i) => i).sort((a, b) => quality[rows[a]!]!.sharpness - quality[rows[b]!]!.sharpness);
    const rank = new Array<number>(rows.length);
    bySharp.forEach((i, pos) => (rank[i] = pos / (rows.length - 1)));
    let best = 0;
    let bestScore = -Infinity;
    rows.forEach((r, i) => {
      const s = representativeScore(rank[i]!, span > 0 ? (cos[i]! - lo) / span : 1, quality[r]!.brightness);
      if (s > bestScore || (s === bestScore && r < rows[best]!)) {
        bestScore = s;
        best = i;
      }
    });
    return rows[best]!;
  });
}

/**
 * The label budget: choose at most `k` of `candidates` that are as mutually distinct as
 * possible, by greedy farthest-point traversal (Gonzalez 1985, "Clustering to minimize
 * the maximum intercluster distance", a 2-approximation of the k-center problem).
 *
 * Starts from `candidates[0]` (callers put their best frame first) and repeatedly adds
 * the candidate whose highest cosine similarity to those chosen is lowest. When `exclude`
 * rows are given (frames already labelled), they count as chosen from the start but are
 * not returned. Deterministic; ties go to the earlier candidate. Cost O(k * m * dim) for
 * m candidates.
 *
 * @param vectors n * dim row-major, rows L2-normalised.
 * @param candidates rows to choose from, in order of preference.
 * @param k budget (>= 0); all candidates are returned, in order, when there are at most k.
 * @returns the chosen rows, in the order they were chosen.
 */
export function farthestPointSelect(vectors: Float32Array, dim: number, candidates: number[], k: number, exclude: number[] = []): number[] {
  if (candidates.length <= k) return [...candidates];
  if (k <= 0) return [];
  const nearest = new Float64Array(candidates.length).fill(-Infinity);
  const taken = new Uint8Array(candidates.length);
  const chosen: number[] = [];
  const absorb = (row: number) => {
    candidates.forEach((c, i) => {
      const s = rowDot(vectors, dim, c, row);
      if (s > nearest[i]!) nearest[i] = s;
    });
  };
  for (const e of exclude) absorb(e);
  let next = exclude.length ? -1 : 0;
  while (chosen.length < k) {
    if (next < 0) {
      let lowest = Infinity;
      for (let i = 0; i < candidates.length; i++) {
        if (!taken[i] && nearest[i]! < lowest) {
          lowest = nearest[i]!;
          next = i;
        }
      }
    }
    taken[next] = 1;
    chosen.push(candidates[next]!);
    absorb(candidates[next]!);
    next = -1;
  }
  return chosen;
}

/**
 * Exact duplicates: rows whose pixel hashes are equal.
 *
 * @param hashes pixel hash of each row (e.g. sha256 of the decoded pixels).
 * @returns `firstOf[i]`: the first row with row i's hash (i itself when it is the first),
 *   and `unique`: the first rows, in order.
 */
export function exactDuplicates(hashes: readonly string[]): { firstOf: Int32Array; unique: number[] } {
  const first = new Map<string, number>();
  const firstOf = new Int32Array(hashes.length);
  const unique: number[] = [];
  hashes.forEach((h, i) => {
    const f = first.get(h);
    if (f === undefined) {
      first.set(h, i);
      unique.push(i);
      firstOf[i] = i;
    } else firstOf[i] = f;
  });
  return { firstOf, unique };
}
