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
 *    invent them) and merged with union-find (path halving, union by index; Tarjan 1975);
 * 4. a second, much smaller pass joins components that are pieces of one cluster whose
 *    joining edge the row search missed (HNSW recall falls as n grows, most with many
 *    tight, mutually equidistant clusters): an HNSW index of the component centroids
 *    proposes pairs, and a pair is merged only on a member pair verified >= threshold.
 *
 * Below `exactMaxRows` rows the exact all-pairs graph is cheaper and is used instead.
 */
import * as os from 'node:os';
import { Index, MetricKind, ScalarKind } from 'usearch';
import { InvalidInputError } from '../../contracts';
import { mulberry32 } from '../../lib/rng';

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
  /**
   * Second pass over components (default true): an HNSW index of the component centroids
   * proposes pairs of components that may be pieces of one cluster whose joining edge the
   * first search missed; a pair is merged only when some member pair is verified >= threshold.
   */
  refine?: boolean;
  /** Called between phases and every few thousand rows (e.g. to heartbeat). */
  onProgress?: (phase: 'project' | 'index' | 'search' | 'verify' | 'refine', done: number, of: number) => void;
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
  timings: { projectMs: number; indexMs: number; searchMs: number; verifyMs: number; refineMs: number };
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
 *   const { clusterOf, count } = nearDuplicateClusters(vectors, 1280, { threshold: 0.93 });
 */
export function nearDuplicateClusters(vectors: Float32Array, dim: number, opts: NearDuplicateOptions): NearDuplicateResult {
  const n = vectors.length / dim;
  if (!(dim > 0) || !Number.isInteger(n)) throw new InvalidInputError(`vectors length ${vectors.length} is not a multiple of dim ${dim}`);
  if (!(opts.threshold >= -1 && opts.threshold <= 1)) throw new InvalidInputError(`threshold must be in [-1, 1], got ${opts.threshold}`);
  const method = opts.method === 'exact' || opts.method === 'ann' ? opts.method : n <= (opts.exactMaxRows ?? 1500) ? 'exact' : 'ann';
  const timings = { projectMs: 0, indexMs: 0, searchMs: 0, verifyMs: 0, refineMs: 0 };
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
  const proj = pdim < dim ? sparseProjection(dim, pdim, opts.seed ?? 1) : undefined;
  const points = proj ? project(vectors, dim, proj) : vectors;
  const idim = proj ? pdim : dim;
  timings.projectMs = Date.now() - t;

  const hnsw = { threads, connectivity: opts.connectivity ?? 16, expansionAdd: opts.expansionAdd ?? 64, expansionSearch: opts.expansionSearch ?? 64 };
  t = Date.now();
  opts.onProgress?.('index', 0, n);
  const index = buildIndex(points, idim, hnsw, (done) => opts.onProgress?.('index', done, n));
  timings.indexMs = Date.now() - t;

  searchIndex(
    index,
    points,
    idim,
    k,
    threads,
    (i, other, ms) => {
      timings.searchMs += ms;
      const t0 = Date.now();
      if (uf.find(i) !== uf.find(other)) {
        candidates++;
        if (rowDot(vectors, dim, i, other) >= opts.threshold && uf.union(i, other)) merges++;
      }
      timings.verifyMs += Date.now() - t0;
    },
    (done) => opts.onProgress?.('verify', done, n),
  );

  if (opts.refine ?? true) {
    t = Date.now();
    const r = refineComponents(vectors, dim, uf, opts.threshold, proj, hnsw, (done, of) => opts.onProgress?.('refine', done, of));
    candidates += r.candidates;
    merges += r.merges;
    timings.refineMs = Date.now() - t;
  }
  return { ...uf.labels(), method: 'ann', candidates, merges, timings };
}

interface HnswParams {
  threads: number;
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

/** Rows per `add` / `search` call: progress is reported between slices, neighbour lists stay small. */
const SLICE = 65_536;

/** An HNSW index (cosine, f32) of `points` with keys 0..n-1. */
function buildIndex(points: Float32Array, dim: number, p: HnswParams, progress: (done: number) => void): Index {
  const n = points.length / dim;
  const index = new Index({
    dimensions: dim,
    metric: MetricKind.Cos,
    quantization: ScalarKind.F32,
    connectivity: p.connectivity,
    expansion_add: p.expansionAdd,
    expansion_search: p.expansionSearch,
    multi: false,
  });
  for (let start = 0; start < n; start += SLICE) {
    const end = Math.min(n, start + SLICE);
    const keys = new BigUint64Array(end - start);
    for (let i = start; i < end; i++) keys[i - start] = BigInt(i);
    index.add(keys, points.subarray(start * dim, end * dim), p.threads);
    progress(end);
  }
  return index;
}

/** Search every row of `points` for its `k` nearest rows; `visit(row, neighbour, msSpentSearching)` for each other row found. */
function searchIndex(
  index: Index,
  points: Float32Array,
  dim: number,
  k: number,
  threads: number,
  visit: (row: number, other: number, searchMs: number) => void,
  progress: (done: number) => void,
): void {
  const n = points.length / dim;
  for (let start = 0; start < n; start += SLICE) {
    const end = Math.min(n, start + SLICE);
    const t = Date.now();
    const found = index.search(points.subarray(start * dim, end * dim), k, threads) as unknown as { keys: BigUint64Array; counts: BigUint64Array };
    let ms = Date.now() - t;
    for (let i = start; i < end; i++) {
      const base = (i - start) * k;
      const cnt = Number(found.counts[i - start]);
      for (let j = 0; j < cnt; j++) {
        const other = Number(found.keys[base + j]);
        if (other === i || other >= n) continue;
        visit(i, other, ms);
        ms = 0;
      }
    }
    progress(end);
  }
}

/** Members compared per component when checking whether two components touch. */
const REFINE_MEMBERS = 24;

/**
 * Join components that the row search left apart although an edge joins them: index the
 * components' normalised centroids (projected like the rows), ask each for its 8 nearest
 * centroids, and for each pair whose full-dimensional centroid cosine is at least
 * `threshold - 0.05`, compare up to 24 x 24 member pairs; merge on the first pair >= threshold.
 * Every merge rests on a verified edge, as in the first pass.
 */
function refineComponents(
  vectors: Float32Array,
  dim: number,
  uf: UnionFind,
  threshold: number,
  proj: ReturnType<typeof sparseProjection> | undefined,
  hnsw: HnswParams,
  progress: (done: number, of: number) => void,
): { candidates: number; merges: number } {
  const n = vectors.length / dim;
  const { clusterOf, count } = uf.labels();
  if (count < 2) return { candidates: 0, merges: 0 };
  // Members of each component, CSR.
  const start = new Int32Array(count + 1);
  for (let i = 0; i < n; i++) start[clusterOf[i]! + 1]!++;
  for (let c = 0; c < count; c++) start[c + 1]! += start[c]!;
  const fill = start.slice(0, count);
  const members = new Int32Array(n);
  for (let i = 0; i < n; i++) members[fill[clusterOf[i]!]!++] = i;
  const centroids = new Float32Array(count * dim);
  for (let i = 0; i < n; i++) {
    const o = clusterOf[i]! * dim;
    for (let d = 0; d < dim; d++) centroids[o + d]! += vectors[i * dim + d]!;
  }
  for (let c = 0; c < count; c++) {
    const norm = Math.sqrt(rowDot(centroids, dim, c, c)) || 1;
    for (let d = 0; d < dim; d++) centroids[c * dim + d]! /= norm;
  }
  const points = proj ? project(centroids, dim, proj) : centroids;
  const pdim = proj ? proj.length : dim;
  const index = buildIndex(points, pdim, hnsw, () => undefined);
  let candidates = 0;
  let merges = 0;
  const touches = (a: number, b: number): boolean => {
    const ea = Math.min(start[a + 1]!, start[a]! + REFINE_MEMBERS);
    const eb = Math.min(start[b + 1]!, start[b]! + REFINE_MEMBERS);
    for (let i = start[a]!; i < ea; i++) {
      for (let j = start[b]!; j < eb; j++) {
        candidates++;
        if (rowDot(vectors, dim, members[i]!, members[j]!) >= threshold) {
          uf.union(members[i]!, members[j]!);
          return true;
        }
      }
    }
    return false;
  };
  searchIndex(
    index,
    points,
    pdim,
    Math.min(8, count),
    hnsw.threads,
    (a, b) => {
      if (uf.find(members[start[a]!]!) === uf.find(members[start[b]!]!)) return;
      if (rowDot(centroids, dim, a, b) < threshold - 0.05) return;
      if (touches(a, b)) merges++;
    },
    (done) => progress(done, count),
  );
  return { candidates, merges };
}
