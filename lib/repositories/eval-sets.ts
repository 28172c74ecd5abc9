/**
 * `eval_sets`, `eval_set_frames` and `eval_set_videos`: each label's fixed evaluation set,
 * versioned (version N holds every frame of N-1 plus the frames of the videos added), and
 * the videos reserved for it. Written together, once per version ({@link insertVersion}),
 * never rewritten: one module. The only place their SQL is written (docs/architecture.md,
 * "Postgres: one owner per table"). Every function runs on a pool or on a client inside the
 * caller's transaction; those taking a `PoolClient` need one.
 */
import type { PoolClient } from 'pg';
import type { EvalSetFrame } from '../../contracts';
import type { Queryable } from '../db';

/** A version's row: who grew it, why and when, and its frames per class. */
export interface EvalSetHead {
  version: number;
  frames: number;
  videos: number;
  /** Frames per class. */
  counts: Record<string, number>;
  actor: string;
  reason: string;
  created_at: Date;
}

/** Hold the label's evaluation-set lock (`evalset:<label>`) until the transaction ends: two growths never interleave. */
export async function lockLabel(c: PoolClient, label: string): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`evalset:${label}`]);
}

/** The label's newest evaluation-set version, or null when it has none. */
export async function currentVersion(db: Queryable, label: string): Promise<number | null> {
  const r = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM eval_sets WHERE label = $1', [label]);
  return r.rows[0]?.v ?? null;
}

/** A version's row (default: the newest); undefined when there is none. */
export async function head(db: Queryable, label: string, version?: number): Promise<Omit<EvalSetHead, 'frames' | 'videos'> | undefined> {
  const h = await db.query<{ version: number; counts: Record<string, number>; actor: string; reason: string; created_at: Date }>(
    `SELECT version, counts, actor, reason, created_at FROM eval_sets WHERE label = $1 AND ($2::int IS NULL OR version = $2) ORDER BY version DESC LIMIT 1`,
    [label, version ?? null],
  );
  return h.rows[0];
}

/** A version's frames, by video then frame key. */
export async function frames(db: Queryable, label: string, version: number): Promise<EvalSetFrame[]> {
  const f = await db.query<{ frame_key: string; video_id: string; class: string; label_source: EvalSetFrame['labelSource'] }>(
    'SELECT frame_key, video_id, class, label_source FROM eval_set_frames WHERE label = $1 AND version = $2 ORDER BY video_id, frame_key',
    [label, version],
  );
  return f.rows.map((x) => ({ frameKey: x.frame_key, videoId: x.video_id, class: x.class, labelSource: x.label_source }));
}

/** Every version's row, oldest first. */
export async function history(db: Queryable, label: string): Promise<EvalSetHead[]> {
  const r = await db.query<EvalSetHead>('SELECT version, frames, videos, counts, actor, reason, created_at FROM eval_sets WHERE label = $1 ORDER BY version', [
    label,
  ]);
  return r.rows;
}

/** The videos reserved for the label's evaluation (no dataset of the label may train on them). */
export async function videos(db: Queryable, label: string): Promise<Set<string>> {
  const r = await db.query<{ video_id: string }>('SELECT video_id FROM eval_set_videos WHERE label = $1', [label]);
  return new Set(r.rows.map((x) => x.video_id));
}

/**
 * Write a new version: its row (frames, videos and counts from `frames`), its frames, and
 * the videos it adds to the reserved ones. Three statements: run it in the transaction that
 * holds the label's lock ({@link lockLabel}).
 *
 * @throws the primary-key violation when the version exists, or a video is reserved already.
 */
export async function insertVersion(
  c: PoolClient,
  v: {
    label: string;
    version: number;
    frames: readonly EvalSetFrame[];
    addedVideos: readonly string[];
    counts: Record<string, number>;
    actor: string;
    reason: string;
  },
): Promise<void> {
  const videoCount = new Set(v.frames.map((f) => f.videoId)).size;
  await c.query('INSERT INTO eval_sets (label, version, frames, videos, counts, actor, reason) VALUES ($1,$2,$3,$4,$5,$6,$7)', [
    v.label,
    v.version,
    v.frames.length,
    videoCount,
    JSON.stringify(v.counts),
    v.actor,
    v.reason,
  ]);
  await c.query(
    `INSERT INTO eval_set_frames (label, version, frame_key, video_id, class, label_source)
     SELECT $1, $2, f.k, f.v, f.c, f.s FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS f(k, v, c, s)`,
    [v.label, v.version, v.frames.map((f) => f.frameKey), v.frames.map((f) => f.videoId), v.frames.map((f) => f.class), v.frames.map((f) => f.labelSource)],
  );
  await c.query('INSERT INTO eval_set_videos (label, video_id, added_in) SELECT $1, v, $2 FROM unnest($3::text[]) AS v', [v.label, v.version, v.addedVideos]);
}
