/**
 * The weak label step's decision, without I/O: what each representative of the dedupe
 * step gets in `weak` mode, given the label's own earlier labels and the exclusion
 * evidence of the taxonomy (both read by `domain/labelled.ts`).
 */
import { NEGATIVE_LABEL, type DedupeCluster, type LabelledFrame, type SearchHit } from '../../contracts';
import type { ExclusionEvidence, LabelledFrameRow } from '../../domain/labelled';

/** The earlier frames of a cluster (`seenKeys`, or `seenAs` alone in manifests made before `seenKeys`). */
export function earlierKeysOf(c: Pick<DedupeCluster, 'seenAs' | 'seenKeys'>): string[] {
  return c.seenKeys ?? (c.seenAs !== undefined ? [c.seenAs] : []);
}

/**
 * The frames whose exclusion evidence counts for a cluster: its representative, its other
 * members (a run of the excluding label may have labelled another one of them) and its
 * earlier frames, in that order.
 */
export function evidenceKeysOf(c: Pick<DedupeCluster, 'representative' | 'members' | 'seenAs' | 'seenKeys'>): string[] {
  return [...new Set([c.representative, ...c.members, ...earlierKeysOf(c)])];
}

/**
 * The exclusion evidence that decides a cluster, if any: the first of its
 * {@link evidenceKeysOf} with evidence that counts. People's positives of an excluding
 * label always count. A weak positive (the video's catalog label in the excluding label's
 * run) counts only on a frame of a video this run does not take as a positive: where the
 * catalog calls one video both labels, the run's own search decides, not the other label's.
 */
export function evidenceFor(
  c: Pick<DedupeCluster, 'representative' | 'members' | 'seenAs' | 'seenKeys'>,
  evidence: ReadonlyMap<string, ExclusionEvidence>,
  roleOf: (videoId: string) => SearchHit['role'] | undefined,
): ExclusionEvidence | undefined {
  for (const k of evidenceKeysOf(c)) {
    const e = evidence.get(k);
    if (e && (e.source === 'human' || roleOf(e.videoId) !== 'positive')) return e;
  }
  return undefined;
}

/** What {@link decideWeakLabels} decided. */
export interface WeakLabels {
  frames: LabelledFrame[];
  /** Representatives labelled by the search's weak label. */
  sent: number;
  /** Representatives that copied an earlier label of the label's own runs. */
  inherited: number;
  /** Representatives labelled `other` on exclusion evidence. */
  evidence: number;
}

/**
 * The weak label of each representative. Pure.
 *
 * 1. A cluster whose earlier frames have a label of the label's own runs (`own`, by frame
 *    key) copies the first one's label (`inheritedFrom`, `inheritedRun`).
 * 2. Else a cluster going to labelling (new content within the budget, or seen content
 *    with no own label) is `other` when {@link evidenceFor} finds exclusion evidence
 *    (marked `evidence`), else the search's guess: the label for a positive video (0.7 for
 *    a title match), `other` for a negative one.
 * 3. Clusters over the budget stay unlabelled.
 *
 * Nothing here reads another label's `other`, a model's label, or any label of another
 * label except as evidence that a frame is `other`.
 *
 * @param label the run's (canonical) label.
 * @param hits the search's hits (roles and how positives matched).
 */
export function decideWeakLabels(
  label: string,
  clusters: readonly DedupeCluster[],
  hits: readonly SearchHit[],
  own: ReadonlyMap<string, LabelledFrameRow>,
  evidence: ReadonlyMap<string, ExclusionEvidence>,
): WeakLabels {
  const hitOf = new Map(hits.map((h) => [h.videoId, h]));
  const roleOf = (v: string) => hitOf.get(v)?.role;
  const out: WeakLabels = { frames: [], sent: 0, inherited: 0, evidence: 0 };
  for (const c of clusters) {
    const base = { key: c.representative, videoId: c.videoId };
    const priorKey = earlierKeysOf(c).find((k) => own.has(k));
    if (priorKey !== undefined) {
      const prior = own.get(priorKey)!;
      out.inherited++;
      out.frames.push({
        ...base,
        label: prior.label,
        source: prior.source,
        confidence: prior.confidence,
        inheritedFrom: priorKey,
        inheritedRun: prior.workflowId,
      });
      continue;
    }
    if (!c.toLabel && c.seenAs === undefined) continue;
    const e = evidenceFor(c, evidence, roleOf);
    if (e) {
      out.evidence++;
      out.frames.push({
        ...base,
        label: NEGATIVE_LABEL,
        source: 'weak',
        confidence: 1,
        inheritedFrom: e.frameKey,
        inheritedRun: e.workflowId,
        evidence: { label: e.label, runLabel: e.runLabel, source: e.source },
      });
      continue;
    }
    out.sent++;
    const hit = hitOf.get(c.videoId);
    const positive = hit?.role === 'positive';
    out.frames.push({ ...base, label: positive ? label : NEGATIVE_LABEL, source: 'weak', confidence: positive && hit?.matchedBy === 'title' ? 0.7 : 1 });
  }
  return out;
}
