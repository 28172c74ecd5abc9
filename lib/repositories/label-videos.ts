/**
 * `label_videos` and `label_runs_scanned`: which catalog videos each label's runs have used
 * (read from the runs' search and extract manifests), and which runs have been read into
 * it. A pair: a run is marked scanned only by the scan that records its videos. The only
 * place their SQL is written (docs/architecture.md, "Postgres: one owner per table").
 * Every function runs on a pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** A video a run of a label used: its role in the run's search and what came of it. */
export interface LabelVideo {
  videoId: string;
  role: 'positive' | 'negative';
  /** `extracted`: frames were made; `unusable`: the video cannot be decoded (never tried again). */
  outcome: 'extracted' | 'unusable';
}

/**
 * The runs of a label (recorded with it, or that built a dataset named after it) not read
 * into `label_videos` yet, oldest first, with their status.
 */
export async function unscannedRuns(db: Queryable, label: string): Promise<Array<{ workflow_id: string; status: string }>> {
  const res = await db.query<{ workflow_id: string; status: string }>(
    `SELECT r.workflow_id, r.status FROM runs r
      WHERE (r.label = $1 OR r.workflow_id IN (SELECT workflow_id FROM datasets WHERE name = $1))
        AND NOT EXISTS (SELECT 1 FROM label_runs_scanned s WHERE s.workflow_id = r.workflow_id)
      ORDER BY r.started_at`,
    [label],
  );
  return res.rows;
}

/**
 * Record the videos a run of the label used. Videos no longer in the catalog are skipped; a
 * video already recorded keeps its row, except that `unusable` becomes `extracted` (with
 * this run) when this run extracted it.
 */
export async function record(db: Queryable, label: string, workflowId: string, videos: readonly LabelVideo[]): Promise<void> {
  await db.query(
    `INSERT INTO label_videos (label, video_id, workflow_id, role, outcome)
     SELECT $1, v, $2, r, o FROM unnest($3::text[], $4::text[], $5::text[]) AS t(v, r, o)
      WHERE EXISTS (SELECT 1 FROM videos WHERE id = v)
     ON CONFLICT (label, video_id) DO UPDATE SET outcome = 'extracted', workflow_id = EXCLUDED.workflow_id
       WHERE label_videos.outcome <> 'extracted' AND EXCLUDED.outcome = 'extracted'`,
    [label, workflowId, videos.map((v) => v.videoId), videos.map((v) => v.role), videos.map((v) => v.outcome)],
  );
}

/** Mark a (finished) run as read into `label_videos`, with how many videos it had; never again read. Idempotent. */
export async function markScanned(db: Queryable, workflowId: string, label: string, videos: number): Promise<void> {
  await db.query(`INSERT INTO label_runs_scanned (workflow_id, label, videos) VALUES ($1, $2, $3) ON CONFLICT (workflow_id) DO NOTHING`, [
    workflowId,
    label,
    videos,
  ]);
}

/** Ids of the videos the label's runs have used (extracted or found unusable). */
export async function usedBy(db: Queryable, label: string): Promise<string[]> {
  const r = await db.query<{ video_id: string }>('SELECT video_id FROM label_videos WHERE label = $1', [label]);
  return r.rows.map((x) => x.video_id);
}
