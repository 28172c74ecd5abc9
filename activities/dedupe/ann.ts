/**
 * Near-duplicate clustering of L2-normalised embeddings at scale.
 *
 * Two frames are near-duplicates when the cosine similarity of their embeddings is at
 * least a threshold; clusters are the connected components of that "near-duplicate
 * graph" (single linkage at the threshold). Finding the graph exactly costs n^2 / 2 dot
 * products; {@link nearDuplicateClusters} finds its edges with an approximate
 * nearest-neighbour index instead, so the cost grows about as n log n:
 *
 * 1. a very sparse random projection (Li, Hastie & Church 2006, "Very sparse random
 *    projections", KDD; entries +-sqrt(s) with probability 1/(2s), s = sqrt(dim)) maps
 *    the dim-d rows to `projectionDim` dimensions; by Johnson-Lindenstrauss it keeps
 *    angles approximately, and it makes the index 20 times smaller and faster;
 * 2. an HNSW graph (Malkov & Yashunin 2018, "Efficient and robust approximate nearest
 *    neighbor search using Hierarchical Navigable Small World graphs", IEEE TPAMI), from
 *    the `usearch` library (Unum, Apache-2.0, prebuilt N-API binaries), is built on the
 *    projected rows and queried for each row's `neighbours` nearest rows;
 * 3. every candidate edge is verified with the full-dimensional cosine (so no edge
 *    below the threshold is ever accepted: the projection can only lose edges, never
 *    invent them) and merged with union-find (path halving, union by index; Tarjan 1975).
 *
 * Below `exactMaxRows` rows the exact all-pairs graph is cheaper and is used instead.
 */
import * as os from 'node:os';
import { Index, MetricKind, ScalarKind } from 'usearch';
import { InvalidInputError } from '../common/errors';
import { mulberry32 } from '../training/rng';

/** Options of {@link nearDuplicateClusters}. */
export interface NearDuplicateOptions {
  /** Cosine similarity in [-1, 1] at or above which two rows are near-duplicates. */
  threshold: number;
  /** `exact` all pairs, `ann` (HNSW), or `auto`: exact up to `exactMaxRows` rows, else ann (default). */
  method?: 'auto' | 'ann' | 'exact';
  /** Largest n for which `auto` picks the exact method (default 1500). */
  exactMaxRows?: number;
  /** Dimension of the random projection the index is built on (default 64; `dim` or more: no projection). */
  projectionDim?: number;
  /** Nearest neighbours asked of the index per row (default 16). */
  neighbours?: number;
  /** HNSW `M`: graph degree (default 16). */
  connectivity?: number;
  /** HNSW `efConstruction` (default 64). */
  expansionAdd?: number;
  /** HNSW `efSearch` (default 64). */
  expansionSearch?: number;
  /** Threads of the index build and search (default: the machine's available parallelism). */
  threads?: number;
  /** Seed of the random projection (default 1): same seed, same projection. */
  seed?: number;
  /** Called between phases and every few thousand rows (e.g. to heartbeat). */
  onProgress?: (phase: 'project' | 'index' | 'search' | 'verify', done: number, of: number) => void;
}

/** Result of {@link nearDuplicateClusters}. */
export interface NearDuplicateResult {
  /** Cluster id of each row, 0..count-1, numbered in order of each cluster's first row. */
  clusterOf: Int32Array;
  /** Number of clusters. */
  count: number;
  /** Which method ran. */
  method: 'ann' | 'exact';
  /** Candidate pairs whose full cosine was computed (ann: index neighbours in different components; exact: n(n-1)/2). */
  candidates: number;
  /** Verified edges that merged two components. */
  merges: number;
  /** Milliseconds per phase. */
  timings: { projectMs: number; indexMs: number; searchMs: number; verifyMs: number };
}

/** Union-find over 0..n-1 with path halving; the root of a set is its smallest member. */
export class UnionFind {
  readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = new Int32Array(n);
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }
  /** The root of `x`'s set. */
  find(x: number): number {
    const p = this.parent;
    while (p[x] !== x) {
      p[x] = p[p[x]!]!;
      x = p[x]!;
    }
    return x;
  }
  /** Merge the sets of `a` and `b`; returns false when they were already one set. */
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    if (ra < rb) this.parent[rb] = ra;
    else this.parent[ra] = rb;
    return true;
  }
  /** Dense cluster ids 0..count-1, numbered by each set's smallest member. */
  labels(): { clusterOf: Int32Array; count: number } {
    const n = this.parent.length;
    const clusterOf = new Int32Array(n);
    let count = 0;
    for (let i = 0; i < n; i++) {
      const r = this.find(i);
      clusterOf[i] = r === i ? count++ : clusterOf[r]!;
    }
    return { clusterOf, count };
  }
}

/** Dot product of rows `a` and `b` of a row-major matrix. */
export function rowDot(vectors: Float32Array, dim: number, a: number, b: number): number {
  const oa = a * dim;
  const ob = b * dim;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 3 < dim; d += 4) {
    s0 += vectors[oa + d]! * vectors[ob + d]!;
    s1 += vectors[oa + d + 1]! * vectors[ob + d + 1]!;
    s2 += vectors[oa + d + 2]! * vectors[ob + d + 2]!;
    s3 += vectors[oa + d + 3]! * vectors[ob + d + 3]!;
  }
  for (; d < dim; d++) s0 += vectors[oa + d]! * vectors[ob + d]!;
  return s0 + s1 + s2 + s3;
}

/**
 * A very sparse random projection matrix (Li, Hastie & Church 2006): each of the `out`
 * output coordinates sums about `dim / sqrt(dim)` input coordinates with random signs.
 * Deterministic for a given seed. Scaling is omitted: cosine does not depend on it.
 *
 * @returns per output coordinate, the input indices and their signs (+1 / -1).
 */
export function sparseProjection(dim: number, out: number, seed = 1): Array<{ index: Int32Array; sign: Float32Array }> {
  const rand = mulberry32(seed);
  const s = Math.sqrt(dim);
  const rows: Array<{ index: Int32Array; sign: Float32Array }> = [];
  for (let p = 0; p < out; p++) {
    const index: number[] = [];
    const sign: number[] = [];
    for (let d = 0; d < dim; d++) {
      const r = rand();
      if (r < 1 / s) {
        index.push(d);
        sign.push(r < 0.5 / s ? 1 : -1);
      }
    }
    rows.push({ index: Int32Array.from(index), sign: Float32Array.from(sign) });
  }
  return rows;
}

/** Apply {@link sparseProjection} to every row: `n * out` floats. */
export function project(vectors: Float32Array, dim: number, proj: ReturnType<typeof sparseProjection>): Float32Array {
  const n = vectors.length / dim;
  const out = proj.length;
  const res = new Float32Array(n * out);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    for (let p = 0; p < out; p++) {
      const { index, sign } = proj[p]!;
      let acc = 0;
      for (let j = 0; j < index.length; j++) acc += sign[j]! * vectors[o + index[j]!]!;
      res[i * out + p] = acc;
    }
  }
  return res;
}

/**
 * Cluster L2-normalised rows into near-duplicate groups: connected components of the
 * graph whose edges join rows with cosine similarity >= `threshold`.
 *
 * `exact` compares all n(n-1)/2 pairs (O(n^2 dim)); `ann` verifies only the HNSW
 * neighbours of each row (O(n log n) index work + O(n k dim) verification, see the module
 * docstring). The ann result can only split a true component (a missed edge), never join
 * rows that no chain of above-threshold pairs joins. The index build uses several
 * threads, so which near-threshold edges are found may vary from run to run; callers
 * checkpoint the result rather than recompute it.
 *
 * @param vectors n * dim floats, row-major, each row L2-normalised (unit length).
 * @param dim row length (> 0).
 * @returns dense cluster ids per row and counters.
 * @throws InvalidInputError when `vectors.length` is not a multiple of `dim` or the threshold is not in [-1, 1].
 * @example
 *   const { clusterOf, count } = nearDuplicateClusters(vectors, 1280, { threshold: 0.92 });
 */
export function nearDuplicateClusters(vectors: Float32Array, dim: number, opts: NearDuplicateOptions): NearDuplicateResult {
  const n = vectors.length / dim;
  if (!(dim > 0) || !Number.isInteger(n)) throw new InvalidInputError(`vectors length ${vectors.length} is not a multiple of dim ${dim}`);
  if (!(opts.threshold >= -1 && opts.threshold <= 1)) throw new InvalidInputError(`threshold must be in [-1, 1], got ${opts.threshold}`);
  const method = opts.method === 'exact' || opts.method === 'ann' ? opts.method : n <= (opts.exactMaxRows ?? 1500) ? 'exact' : 'ann';
  const timings = { projectMs: 0, indexMs: 0, searchMs: 0, verifyMs: 0 };
  const uf = new UnionFind(n);
  let candidates = 0;
  let merges = 0;
  if (method === 'exact' || n < 2) {
    const t = Date.now();
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) if (rowDot(vectors, dim, i, j) >= opts.threshold && uf.union(i, j)) merges++;
      if (i % 1000 === 0) opts.onProgress?.('verify', i, n);
    }
    candidates = (n * (n - 1)) / 2;
    timings.verifyMs = Date.now() - t;
    return { ...uf.labels(), method: 'exact', candidates, merges, timings };
  }

  const threads = opts.threads ?? Math.max(1, os.availableParallelism());
  const k = Math.min(opts.neighbours ?? 16, n);
  const pdim = opts.projectionDim ?? 64;
  let t = Date.now();
  opts.onProgress?.('project', 0, n);
  const points = pdim < dim ? project(vectors, dim, sparseProjection(dim, pdim, opts.seed ?? 1)) : vectors;
  const idim = pdim < dim ? pdim : dim;
  timings.projectMs = Date.now() - t;

  t = Date.now();
  opts.onProgress?.('index', 0, n);
  const index = new Index({
    dimensions: idim,
    metric: MetricKind.Cos,
    quantization: ScalarKind.F32,
    connectivity: opts.connectivity ?? 16,
    expansion_add: opts.expansionAdd ?? 64,
    expansion_search: opts.expansionSearch ?? 64,
    multi: false,
  });
  // Add and search in slices so that progress can be reported and the neighbour lists stay small.
  const slice = 65_536;
  for (let start = 0; start < n; start += slice) {
    const end = Math.min(n, start + slice);
    const keys = new BigUint64Array(end - start);
    for (let i = start; i < end; i++) keys[i - start] = BigInt(i);
    index.add(keys, points.subarray(start * idim, end * idim), threads);
    opts.onProgress?.('index', end, n);
  }
  timings.indexMs = Date.now() - t;

  for (let start = 0; start < n; start += slice) {
    const end = Math.min(n, start + slice);
    t = Date.now();
    const found = index.search(points.subarray(start * idim, end * idim), k, threads) as unknown as { keys: BigUint64Array; counts: BigUint64Array };
    timings.searchMs += Date.now() - t;
    t = Date.now();
    for (let i = start; i < end; i++) {
      const base = (i - start) * k;
      const cnt = Number(found.counts[i - start]);
      for (let j = 0; j < cnt; j++) {
        const other = Number(found.keys[base + j]);
        if (other === i || other >= n) continue;
        if (uf.find(i) === uf.find(other)) continue;
        candidates++;
        if (rowDot(vectors, dim, i, other) >= opts.threshold && uf.union(i, other)) merges++;
      }
    }
    timings.verifyMs += Date.now() - t;
    opts.onProgress?.('verify', end, n);
  }
  return { ...uf.labels(), method: 'ann', candidates, merges, timings };
}
