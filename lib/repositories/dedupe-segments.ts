/**
 * `dedupe_segments`: the persistent near-duplicate index of each label, one segment per run
 * that deduplicated frames for it (embeddings and index packed in S3). The only place its
 * SQL is written (docs/architecture.md, "Postgres: one owner per table"). Every function
 * runs on a pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** Where a segment's data is in S3. */
export interface SegmentKeys {
  /** frames * dim float32, little-endian. */
  vectors_key: string;
  /** JSON `{keys, videoIds, pixelHashes}`. */
  index_key: string;
}

/** The label's segments for an embedding model, other runs than `exceptRun`, oldest first. */
export async function ofLabel(db: Queryable, label: string, modelKey: string, exceptRun: string): Promise<SegmentKeys[]> {
  const res = await db.query<SegmentKeys>(
    `SELECT vectors_key, index_key FROM dedupe_segments WHERE label = $1 AND model_key = $2 AND workflow_id <> $3 ORDER BY created_at, workflow_id`,
    [label, modelKey, exceptRun],
  );
  return res.rows;
}

/** Record a run's segment (a retried run overwrites its own). */
export async function record(
  db: Queryable,
  s: { label: string; modelKey: string; workflowId: string; vectorsKey: string; indexKey: string; frames: number },
): Promise<void> {
  await db.query(
    `INSERT INTO dedupe_segments (label, model_key, workflow_id, vectors_key, index_key, frames) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (label, model_key, workflow_id) DO UPDATE SET vectors_key = EXCLUDED.vectors_key, index_key = EXCLUDED.index_key, frames = EXCLUDED.frames`,
    [s.label, s.modelKey, s.workflowId, s.vectorsKey, s.indexKey, s.frames],
  );
}
