/**
 * `datasets`: the versioned datasets, one version per run that built one, with the key of
 * its manifest in S3 and its counts. The only place its SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool or
 * on a client inside the caller's transaction; {@link allocateVersion} needs one.
 */
import type { PoolClient } from 'pg';
import { datasetManifestKey, type DatasetManifest } from '../../contracts';
import type { Queryable } from '../db';

/** A dataset version and its manifest's S3 key. */
export interface DatasetVersion {
  name: string;
  version: number;
  manifest_key: string;
}

/**
 * The dataset version of a run, allocated once: the version recorded for `workflowId`, else
 * the next version of `name` (1 for the first), recorded with its manifest key
 * (`datasetManifestKey`) and counts. Takes the name's advisory lock (`dataset:<name>`, held
 * until the transaction ends), so concurrent runs get distinct versions.
 *
 * @param c a client inside a transaction (`withTransaction`).
 */
export async function allocateVersion(c: PoolClient, name: string, workflowId: string, counts: DatasetManifest['counts']): Promise<number> {
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`dataset:${name}`]);
  const existing = await c.query<{ version: number }>('SELECT version FROM datasets WHERE workflow_id = $1', [workflowId]);
  if (existing.rows[0]) return existing.rows[0].version;
  const next = await c.query<{ v: number }>('SELECT coalesce(max(version), 0) + 1 AS v FROM datasets WHERE name = $1', [name]);
  const v = next.rows[0]!.v;
  await c.query('INSERT INTO datasets (name, version, workflow_id, manifest_key, counts) VALUES ($1, $2, $3, $4, $5)', [
    name,
    v,
    workflowId,
    datasetManifestKey(name, v),
    JSON.stringify(counts),
  ]);
  return v;
}

/** Every version of a dataset, oldest first. */
export async function versionsOf(db: Queryable, name: string): Promise<Array<{ version: number; manifest_key: string }>> {
  const r = await db.query<{ version: number; manifest_key: string }>('SELECT version, manifest_key FROM datasets WHERE name = $1 ORDER BY version', [name]);
  return r.rows;
}

/** The manifest key of a dataset version; undefined when there is no such version. */
export async function manifestKeyOf(db: Queryable, name: string, version: number): Promise<string | undefined> {
  const ds = await db.query<{ manifest_key: string }>('SELECT manifest_key FROM datasets WHERE name = $1 AND version = $2', [name, version]);
  return ds.rows[0]?.manifest_key;
}

/** The newest version of a dataset that a published model was trained on; undefined when none. */
export async function latestWithModel(db: Queryable, name: string): Promise<DatasetVersion | undefined> {
  const base = await db.query<DatasetVersion>(
    `SELECT d.name, d.version, d.manifest_key FROM datasets d
      WHERE d.name = $1 AND EXISTS (SELECT 1 FROM models m WHERE m.dataset_name = d.name AND m.dataset_version = d.version)
      ORDER BY d.version DESC LIMIT 1`,
    [name],
  );
  return base.rows[0];
}
