/**
 * `dataset_fingerprints`: the fingerprint of the labelled frames each dataset version was
 * built from (sha256 over the sorted "frame key, label" pairs) and how many there were. The
 * only place its SQL is written (docs/architecture.md, "Postgres: one owner per table").
 * Every function runs on a pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** A dataset version's fingerprint. */
export interface DatasetFingerprint {
  fingerprint: string;
  labelledFrames: number;
}

/** The fingerprint of a dataset version; undefined when none is recorded. */
export async function get(db: Queryable, name: string, version: number): Promise<DatasetFingerprint | undefined> {
  const cached = await db.query<{ labels_fingerprint: string; labelled_frames: number }>(
    'SELECT labels_fingerprint, labelled_frames FROM dataset_fingerprints WHERE name = $1 AND version = $2',
    [name, version],
  );
  const row = cached.rows[0];
  return row ? { fingerprint: row.labels_fingerprint, labelledFrames: row.labelled_frames } : undefined;
}

/** Cache a fingerprint computed from a dataset's manifest; one already recorded is kept. */
export async function cache(db: Queryable, name: string, version: number, fp: DatasetFingerprint): Promise<void> {
  await db.query(`INSERT INTO dataset_fingerprints (name, version, labels_fingerprint, labelled_frames) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [
    name,
    version,
    fp.fingerprint,
    fp.labelledFrames,
  ]);
}

/** Record the fingerprint of a dataset version just built (overwrites: a retried build records its own). */
export async function record(db: Queryable, name: string, version: number, fp: DatasetFingerprint): Promise<void> {
  await db.query(
    `INSERT INTO dataset_fingerprints (name, version, labels_fingerprint, labelled_frames) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name, version) DO UPDATE SET labels_fingerprint = EXCLUDED.labels_fingerprint, labelled_frames = EXCLUDED.labelled_frames`,
    [name, version, fp.fingerprint, fp.labelledFrames],
  );
}
