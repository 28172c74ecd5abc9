/**
 * The dedupe decision, without I/O: exact duplicates, near-duplicate clusters (against
 * the label's earlier frames too), one representative per cluster, and the label budget.
 */
import type { NearDuplicateResult } from './ann';
import { chooseRepresentatives, exactDuplicates, farthestPointSelect, type FrameQuality } from './select';

/** Frames of this run (rows of `vectors`). */
export interface DedupeRows {
  /** n * dim floats, rows L2-normalised. */
  vectors: Float32Array;
  keys: string[];
  videoIds: string[];
  /** Pixel hash of each frame: equal hashes are exact duplicates. */
  pixelHashes: string[];
}

/** Input of {@link planDedupe}. */
export interface PlanInput {
  dim: number;
  run: DedupeRows & {
    quality: FrameQuality[];
    /** Label group of each frame for the budget (the weak label: the run's label or `other`). */
    group: string[];
  };
  /** Frames already in the label's index from earlier runs. */
  earlier: DedupeRows;
  /**
   * Keys of earlier frames that carry a label of the label's own runs (or exclusion evidence): a cluster's `seenKeys`
   * always lists these, first, so the label step finds the label an earlier run gave
   * (other earlier keys are capped at {@link SEEN_KEYS_CAP}). Default: none.
   */
  labelled?: ReadonlySet<string>;
  /** At most this many new representatives per label group go on to labelling. */
  labelBudget: number;
  /** Clusters rows (injected: on a worker thread in the activity, inline in tests). */
  cluster: (vectors: Float32Array, dim: number) => Promise<NearDuplicateResult>;
}

/** One cluster of this run's frames. */
export interface PlannedCluster {
  /** Row of the representative (a frame of this run). */
  representative: number;
  /** Rows of this run in the cluster, representative first. */
  members: number[];
  /** Members pixel-identical to another member listed before them (folded before clustering). */
  exactDuplicates: number;
  /** Key of an earlier run's frame in the same cluster: the content was seen before. */
  seenAs?: string;
  /** Keys of the earlier frames in the cluster: every labelled one first, then at most {@link SEEN_KEYS_CAP} others; `seenAs` first. */
  seenKeys?: string[];
  /** True when the representative goes on to labelling (new content within the budget). */
  toLabel: boolean;
}

/** Unlabelled earlier keys listed per cluster in `seenKeys` (they only say the content was seen). */
export const SEEN_KEYS_CAP = 32;

/** Result of {@link planDedupe}. */
export interface DedupePlan {
  clusters: PlannedCluster[];
  /** Frames of this run pixel-identical to an earlier-listed frame of this run (folded before clustering). */
  exactDuplicates: number;
  /** Earlier frames compared against. */
  earlierFrames: number;
  /** Rows given to the clustering (after exact duplicates were folded). */
  clusteredRows: number;
  /** New clusters left out by the label budget, per group. */
  overBudget: Record<string, number>;
  cluster: Pick<NearDuplicateResult, 'method' | 'candidates' | 'merges' | 'timings'>;
  /** Rows of this run not in the earlier index (what the run adds to it). */
  added: number[];
}

/**
 * Decide clusters, representatives and what goes to labelling.
 *
 * 1. Earlier frames with the same key as a frame of this run are the same frame: that
 *    frame is marked seen. 2. Exact duplicates (equal pixel hashes) are folded before any
 *    similarity is computed. 3. The remaining rows (this run's and the earlier ones) are
 *    clustered; a cluster with an earlier frame is `seenAs` that frame. 4. Each cluster's
 *    representative is chosen among this run's members by quality and centrality
 *    ({@link chooseRepresentatives}). 5. Per label group, at most `labelBudget` new
 *    representatives are chosen by farthest-point traversal, biggest clusters first.
 *
 * Clusters are ordered by their first member's row.
 */
export async function planDedupe(input: PlanInput): Promise<DedupePlan> {
  const { dim, run, earlier } = input;
  const n = run.keys.length;
  const runKeys = new Map(run.keys.map((k, i) => [k, i]));
  const seenKey = new Array<string | undefined>(n);
  const keepEarlier: number[] = [];
  earlier.keys.forEach((k, j) => {
    const i = runKeys.get(k);
    if (i === undefined) keepEarlier.push(j);
    else seenKey[i] = k;
  });
  const total = n + keepEarlier.length;
  const rowVector = (r: number) =>
    r < n ? run.vectors.subarray(r * dim, (r + 1) * dim) : earlier.vectors.subarray(keepEarlier[r - n]! * dim, (keepEarlier[r - n]! + 1) * dim);
  const hashes = [...run.pixelHashes, ...keepEarlier.map((j) => earlier.pixelHashes[j]!)];
  const { firstOf, unique } = exactDuplicates(hashes);
  const packed = new Float32Array(unique.length * dim);
  unique.forEach((r, u) => packed.set(rowVector(r), u * dim));
  const uniqueOf = new Int32Array(total).fill(-1);
  unique.forEach((r, u) => (uniqueOf[r] = u));
  const result = await input.cluster(packed, dim);
  const clusterOfRow = (r: number) => result.clusterOf[uniqueOf[firstOf[r]!]!]!;

  const runMembers = new Map<number, number[]>();
  const earlierKeys = new Map<number, { labelled: string[]; others: string[] }>();
  const noteEarlier = (c: number, key: string) => {
    let e = earlierKeys.get(c);
    if (!e) earlierKeys.set(c, (e = { labelled: [], others: [] }));
    if (input.labelled?.has(key)) e.labelled.push(key);
    else if (e.others.length < SEEN_KEYS_CAP) e.others.push(key);
  };
  const seenKeysOf = (c: number) => {
    const e = earlierKeys.get(c);
    return e ? [...e.labelled, ...e.others] : undefined;
  };
  for (let r = 0; r < total; r++) {
    const c = clusterOfRow(r);
    if (r < n) {
      const list = runMembers.get(c);
      if (list) list.push(r);
      else runMembers.set(c, [r]);
      if (seenKey[r]) noteEarlier(c, seenKey[r]!);
    } else noteEarlier(c, earlier.keys[keepEarlier[r - n]!]!);
  }
  const groups = [...runMembers.entries()];
  const reps = chooseRepresentatives(
    run.vectors,
    dim,
    groups.map(([, m]) => m),
    run.quality,
  );
  let exact = 0;
  for (let r = 0; r < n; r++) if (firstOf[r] !== r) exact++;
  const clusters: PlannedCluster[] = groups.map(([c, members], i) => {
    const rep = reps[i]!;
    return {
      representative: rep,
      members: [rep, ...members.filter((m) => m !== rep)],
      exactDuplicates: members.filter((m) => firstOf[m] !== m).length,
      ...(earlierKeys.has(c) ? { seenAs: seenKeysOf(c)![0]!, seenKeys: seenKeysOf(c)! } : {}),
      toLabel: false,
    };
  });

  const overBudget: Record<string, number> = {};
  const byGroup = new Map<string, PlannedCluster[]>();
  for (const c of clusters) {
    if (c.seenAs !== undefined) continue;
    const g = run.group[c.representative]!;
    byGroup.set(g, [...(byGroup.get(g) ?? []), c]);
  }
  for (const [g, list] of byGroup) {
    const ordered = [...list].sort((a, b) => b.members.length - a.members.length || a.representative - b.representative);
    const chosen = new Set(
      farthestPointSelect(
        run.vectors,
        dim,
        ordered.map((c) => c.representative),
        input.labelBudget,
      ),
    );
    for (const c of list) c.toLabel = chosen.has(c.representative);
    if (list.length > chosen.size) overBudget[g] = list.length - chosen.size;
  }
  return {
    clusters,
    exactDuplicates: exact,
    earlierFrames: earlier.keys.length,
    clusteredRows: unique.length,
    overBudget,
    cluster: { method: result.method, candidates: result.candidates, merges: result.merges, timings: result.timings },
    added: run.keys.map((_, i) => i).filter((i) => seenKey[i] === undefined),
  };
}
