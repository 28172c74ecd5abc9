/**
 * The fixed evaluation set of a label: frames of videos that no dataset version of the
 * label trains on, versioned in Postgres (`eval_sets`, `eval_set_frames`,
 * `eval_set_videos`), grown only on purpose (`reelset evalset grow`, with who and why),
 * never rewritten: version N+1 is version N plus the frames of the videos added.
 *
 * A frame's true class is the consensus of two people when the labelling tables have it
 * (two distinct annotators agreeing in Label Studio, `labeling_annotations`), else the
 * video's catalog label (the label or one of its descendants: the label; anything else:
 * `other`), marked `catalog` so a reader knows no person checked the frame.
 */
import type { Pool } from 'pg';
import { DatasetError, InvalidInputError, RegistryError, type DatasetManifest, type EvalSet, type EvalSetFrame } from '../../contracts';
import { withTransaction, type Queryable } from '../../lib/db';
import { repos } from '../../lib/repositories';
import type { ObjectStore } from '../../lib/s3';

/** A video that may join a label's evaluation set. */
export interface EvalSetCandidate {
  videoId: string;
  /** The class its frames get from the catalog (`label` or `other`). */
  catalogClass: string;
  /** Extracted frames in Postgres. */
  frames: number;
}

/** Videos the label's dataset versions put in their training split (read from their manifests in S3). */
export async function trainedVideos(db: Queryable, store: ObjectStore, label: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const row of await repos.datasets.versionsOf(db, label)) {
    const ds = await store.getJson<DatasetManifest>(row.manifest_key);
    if (!ds)
      throw new DatasetError(`dataset ${label} v${row.version}: manifest ${store.uri(row.manifest_key)} is missing, so which videos it trains on is unknown`);
    for (const v of ds.videos.train) out.set(v, [...(out.get(v) ?? []), row.version]);
  }
  return out;
}

/** The videos reserved for a label's evaluation (left out of every dataset of the label). */
export async function evalSetVideos(db: Queryable, label: string): Promise<Set<string>> {
  return repos.evalSets.videos(db, label);
}

async function catalogClasses(db: Queryable, label: string, videoIds: string[]): Promise<Map<string, string>> {
  const pos = await repos.videoLabels.carryingLabelTree(db, label, videoIds);
  return new Map(videoIds.map((v) => [v, pos.has(v) ? label : 'other']));
}

/**
 * Videos with extracted frames that may join the label's evaluation set: in no training
 * split of any dataset version of the label, and not in the set already.
 */
export async function evalSetCandidates(db: Queryable, store: ObjectStore, label: string): Promise<EvalSetCandidate[]> {
  const trained = await trainedVideos(db, store, label);
  const inSet = await evalSetVideos(db, label);
  const counts = await repos.frames.countsByVideo(db);
  const ids = counts.map((x) => x.videoId).filter((v) => !trained.has(v) && !inSet.has(v));
  const cls = await catalogClasses(db, label, ids);
  return counts.filter((x) => ids.includes(x.videoId)).map((x) => ({ videoId: x.videoId, catalogClass: cls.get(x.videoId)!, frames: x.frames }));
}

/** Pick `k` of `n` indices evenly spaced (all when n <= k). */
export function evenlySpaced(n: number, k: number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: k }, (_, i) => Math.floor(((i + 0.5) * n) / k));
}

/**
 * Consensus labels of frames in `label`'s own Label Studio project: a label given by at
 * least two distinct people (and by more people than any other label). Annotations in other
 * labels' projects never count: their `other` means "not that label" (the label's data is
 * its own, as in the dataset step).
 */
async function consensusLabels(db: Queryable, label: string, frameKeys: string[]): Promise<Map<string, string>> {
  const by = new Map<string, { label: string; people: number }[]>();
  for (const row of await repos.labelingAnnotations.peoplePerLabelInLabelProject(db, label, frameKeys)) {
    by.set(row.frameKey, [...(by.get(row.frameKey) ?? []), { label: row.label, people: row.people }]);
  }
  const out = new Map<string, string>();
  for (const [k, ls] of by) {
    ls.sort((a, b) => b.people - a.people);
    if (ls[0]!.people >= 2 && (ls.length === 1 || ls[1]!.people < ls[0]!.people)) out.set(k, ls[0]!.label);
  }
  return out;
}

/** A version of the label's evaluation set (default: the newest), or null when it has none. */
export async function getEvalSet(db: Queryable, label: string, version?: number): Promise<EvalSet | null> {
  const head = await repos.evalSets.head(db, label, version);
  if (!head) return null;
  const frames = await repos.evalSets.frames(db, label, head.version);
  return {
    label,
    version: head.version,
    frames,
    videos: [...new Set(frames.map((x) => x.videoId))],
    counts: head.counts,
    actor: head.actor,
    reason: head.reason,
    createdAt: head.created_at.toISOString(),
  };
}

/** Every version of a label's evaluation set: version, frames, videos, who, why, when. */
export async function evalSetHistory(
  db: Queryable,
  label: string,
): Promise<Array<{ version: number; frames: number; videos: number; counts: Record<string, number>; actor: string; reason: string; createdAt: string }>> {
  return (await repos.evalSets.history(db, label)).map((x) => ({
    version: x.version,
    frames: x.frames,
    videos: x.videos,
    counts: x.counts,
    actor: x.actor,
    reason: x.reason,
    createdAt: x.created_at.toISOString(),
  }));
}

/**
 * Grow a label's evaluation set with the frames of `videoIds` (on purpose: who and why are
 * recorded): a new version holding the previous version's frames plus up to
 * `framesPerVideo` frames of each new video, evenly spaced in time, taken from the video's
 * most recent extraction. Runs under the label's evaluation-set lock, so two growths never
 * interleave.
 *
 * @throws InvalidInputError when no video is given, a reason is missing, or a video is
 *   unknown, has no extracted frame, is in the set already, or is in the training split
 *   of a dataset version of the label (naming the versions).
 */
export async function growEvalSet(
  pool: Pool,
  store: ObjectStore,
  req: { label: string; videoIds: string[]; actor: string; reason: string; framesPerVideo: number },
): Promise<EvalSet> {
  const label = req.label.trim().toLowerCase();
  const videoIds = [...new Set(req.videoIds)];
  if (!label) throw new InvalidInputError('evaluation set: label is empty');
  if (videoIds.length === 0)
    throw new InvalidInputError('evaluation set: no video given (--videos id,id,...; `reelset evalset candidates <label>` lists the eligible ones)');
  if (!req.reason.trim()) throw new InvalidInputError('evaluation set: a reason is required (--reason): the set grows only on purpose');
  const trained = await trainedVideos(pool, store, label);
  return withTransaction(pool, async (c) => {
    await repos.evalSets.lockLabel(c, label);
    const inSet = await evalSetVideos(c, label);
    const problems: string[] = [];
    const knownIds = new Set(await repos.videos.existingIds(c, videoIds));
    const picked: Array<{ key: string; videoId: string }> = [];
    for (const v of videoIds) {
      if (!knownIds.has(v)) problems.push(`video "${v}" is not in the catalog`);
      else if (inSet.has(v)) problems.push(`video "${v}" is in the evaluation set already`);
      else if (trained.has(v)) problems.push(`video "${v}" is in the training split of dataset ${label} v${trained.get(v)!.join(', v')}`);
      else {
        const keys = await repos.frames.keysOfLatestExtraction(c, v);
        if (keys.length === 0) problems.push(`video "${v}" has no extracted frame (run new-category or reelset frames on it first)`);
        for (const i of evenlySpaced(keys.length, req.framesPerVideo)) picked.push({ key: keys[i]!, videoId: v });
      }
    }
    if (problems.length) throw new InvalidInputError(`cannot grow the evaluation set of "${label}": ${problems.join('; ')}`);
    const cls = await catalogClasses(c, label, videoIds);
    const consensus = await consensusLabels(
      c,
      label,
      picked.map((p) => p.key),
    );
    const prev = await getEvalSet(c, label);
    const version = (prev?.version ?? 0) + 1;
    const frames: EvalSetFrame[] = [
      ...(prev?.frames ?? []),
      ...picked.map((p) => {
        const agreed = consensus.get(p.key);
        return agreed
          ? { frameKey: p.key, videoId: p.videoId, class: agreed, labelSource: 'consensus' as const }
          : { frameKey: p.key, videoId: p.videoId, class: cls.get(p.videoId)!, labelSource: 'catalog' as const };
      }),
    ];
    const counts: Record<string, number> = {};
    for (const f of frames) counts[f.class] = (counts[f.class] ?? 0) + 1;
    await repos.evalSets.insertVersion(c, { label, version, frames, addedVideos: videoIds, counts, actor: req.actor, reason: req.reason });
    const out = await getEvalSet(c, label, version);
    if (!out) throw new RegistryError(`evaluation set ${label} v${version} vanished inside its transaction`);
    return out;
  });
}
