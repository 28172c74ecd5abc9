/**
 * `labeling_projects`: the Label Studio project of each label (one per label, reused by
 * every run of it) and the choices it offers. The only place its SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool or
 * on a client inside the caller's transaction; {@link lockLabel} needs one.
 */
import type { PoolClient } from 'pg';
import type { Queryable } from '../db';

/** Hold the label's project lock (`labeling-project:<label>`) until the transaction ends: concurrent runs of a label make one project. */
export async function lockLabel(c: PoolClient, label: string): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`labeling-project:${label}`]);
}

/** The label's project id and choices; undefined when it has none. */
export async function ofLabel(db: Queryable, label: string): Promise<{ projectId: number; choices: string[] } | undefined> {
  const row = (await db.query<{ project_id: string; choices: string[] }>('SELECT project_id, choices FROM labeling_projects WHERE label = $1', [label]))
    .rows[0];
  return row ? { projectId: Number(row.project_id), choices: row.choices } : undefined;
}

/** Record the label's project (replacing the one recorded: id, URL and choices). */
export async function upsert(db: Queryable, p: { label: string; projectId: number; url: string; choices: readonly string[] }): Promise<void> {
  await db.query(
    `INSERT INTO labeling_projects (label, project_id, url, choices) VALUES ($1, $2, $3, $4)
     ON CONFLICT (label) DO UPDATE SET project_id = EXCLUDED.project_id, url = EXCLUDED.url, choices = EXCLUDED.choices, updated_at = now()`,
    [p.label, p.projectId, p.url, p.choices],
  );
}
