/**
 * Writing a run's weak labels with their provenance (`frame_labels.origin`,
 * `inherited_from`, `inherited_key`, `inherited_label`; migration
 * `1700000000170_label-exclusions.sql`), so that what a later run reads of them can be
 * checked exactly (`keepLabelRow` in `domain/labelled.ts`).
 */
import type { LabelledFrame } from '../../contracts';
import type { LabelOrigin } from '../../domain/labelled';
import type { Queryable } from '../../lib/db';
import { repos } from '../../lib/repositories';

/** The provenance columns of a frame's row. */
export interface Provenance {
  origin: LabelOrigin;
  inheritedFrom: string | null;
  inheritedKey: string | null;
  inheritedLabel: string | null;
}

/**
 * Provenance of a labelled frame. Pure.
 *
 * - `evidence` when the frame carries exclusion evidence (`frame.evidence`): derived from
 *   the run `inheritedRun`, frame `inheritedFrom`, label `evidence.label`;
 * - `inherited` when its label was copied from `inheritedFrom` of run `inheritedRun`;
 * - `own` otherwise (the search's weak label, a fallback at the deadline).
 *
 * @throws Error when `inheritedFrom` is set without `inheritedRun` (a bug: every copy names its run).
 */
export function provenanceOf(frame: Pick<LabelledFrame, 'label' | 'inheritedFrom' | 'inheritedRun' | 'evidence'>): Provenance {
  if (frame.inheritedFrom === undefined) return { origin: 'own', inheritedFrom: null, inheritedKey: null, inheritedLabel: null };
  if (frame.inheritedRun === undefined) throw new Error(`frame copied from ${frame.inheritedFrom} without the run it came from`);
  return frame.evidence
    ? { origin: 'evidence', inheritedFrom: frame.inheritedRun, inheritedKey: frame.inheritedFrom, inheritedLabel: frame.evidence.label }
    : { origin: 'inherited', inheritedFrom: frame.inheritedRun, inheritedKey: frame.inheritedFrom, inheritedLabel: frame.label };
}

/**
 * Upsert a run's weak (non-human) label of a frame with its provenance: one row per
 * (frame, run, source); a retried attempt overwrites its own row.
 *
 * @param q a pool or a client inside a transaction.
 */
export async function upsertRunLabel(
  q: Queryable,
  workflowId: string,
  frame: Pick<LabelledFrame, 'key' | 'label' | 'source' | 'confidence' | 'inheritedFrom' | 'inheritedRun' | 'evidence'>,
): Promise<void> {
  await repos.frameLabels.upsertRunLabel(q, workflowId, {
    frameKey: frame.key,
    label: frame.label,
    source: frame.source,
    confidence: frame.confidence,
    ...provenanceOf(frame),
  });
}
