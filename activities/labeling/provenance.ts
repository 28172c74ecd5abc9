/**
 * Writing a run's weak labels with their provenance (`frame_labels.origin`,
 * `inherited_from`, `inherited_key`, `inherited_label`; migration
 * `1700000000170_label-exclusions.sql`), so that what a later run reads of them can be
 * checked exactly (`keepLabelRow` in `lib/labelled.ts`).
 */
import type { Pool, PoolClient } from 'pg';
import type { LabelledFrame } from '../../contracts';
import type { LabelOrigin } from '../../lib/labelled';

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
  q: Pool | PoolClient,
  workflowId: string,
  frame: Pick<LabelledFrame, 'key' | 'label' | 'source' | 'confidence' | 'inheritedFrom' | 'inheritedRun' | 'evidence'>,
): Promise<void> {
  const p = provenanceOf(frame);
  await q.query(
    `INSERT INTO frame_labels (frame_key, workflow_id, label, source, confidence, origin, inherited_from, inherited_key, inherited_label)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (frame_key, workflow_id, source) WHERE source <> 'human' DO UPDATE SET label = EXCLUDED.label, confidence = EXCLUDED.confidence,
       origin = EXCLUDED.origin, inherited_from = EXCLUDED.inherited_from, inherited_key = EXCLUDED.inherited_key,
       inherited_label = EXCLUDED.inherited_label, updated_at = now()`,
    [frame.key, workflowId, frame.label, frame.source, frame.confidence, p.origin, p.inheritedFrom, p.inheritedKey, p.inheritedLabel],
  );
}
