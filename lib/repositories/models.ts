/**
 * `models` and `model_transitions`: the model registry (one row per published version and
 * role, with its stage) and every stage change of a version with who, when and why. A pair:
 * a stage changes only with its transition row ({@link setStage}), and a publication is
 * recorded as the version's first transition. The only place their SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool or
 * on a client inside the caller's transaction; those taking a `PoolClient` need one.
 *
 * Concurrency: every change of a label's versions holds the label's advisory lock
 * ({@link lockLabel}, `model:<name>`) until its transaction ends.
 */
import type { PoolClient } from 'pg';
import type { GateDecision, ModelStage, ModelTransition } from '../../contracts';
import type { Queryable } from '../db';

/** One row of `models`: one role of a published version. */
export interface ModelRow {
  name: string;
  version: number;
  role: 'teacher' | 'student';
  stage: ModelStage;
  workflow_id: string;
  dataset_name: string;
  dataset_version: number;
  /** `models/<name>/v<version>/<role>`. */
  artifact_prefix: string;
  labels: string[];
  created_at: Date;
}

/** What publishing writes of one role of a version. */
export interface ModelInsert {
  name: string;
  version: number;
  role: 'teacher' | 'student';
  workflowId: string;
  dataset: { name: string; version: number };
  artifactPrefix: string;
  labels: string[];
  /** Stored as JSON. */
  metrics: unknown;
}

/** Hold the label's advisory lock (`model:<name>`) until the transaction ends: transitions and publications of a label never interleave. */
export async function lockLabel(c: PoolClient, name: string): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`model:${name}`]);
}

/**
 * The version of a run's models, allocated once: the version the run published, else the
 * label's next version (1 for the first), under the label's lock ({@link lockLabel}).
 * Nothing is written: the rows come with {@link insert}.
 *
 * @param c a client inside a transaction (`withTransaction`).
 */
export async function allocateVersion(c: PoolClient, name: string, workflowId: string): Promise<number> {
  await lockLabel(c, name);
  const existing = await c.query<{ version: number }>('SELECT version FROM models WHERE workflow_id = $1 LIMIT 1', [workflowId]);
  if (existing.rows[0]) return existing.rows[0].version;
  const next = await c.query<{ v: number }>('SELECT coalesce(max(version), 0) + 1 AS v FROM models WHERE name = $1', [name]);
  return next.rows[0]!.v;
}

/** Register one role of a version as a candidate; a run's role already registered is left alone. */
export async function insert(db: Queryable, m: ModelInsert): Promise<void> {
  await db.query(
    `INSERT INTO models (name, version, role, workflow_id, dataset_name, dataset_version, artifact_prefix, labels, metrics)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (workflow_id, role) DO NOTHING`,
    [m.name, m.version, m.role, m.workflowId, m.dataset.name, m.dataset.version, m.artifactPrefix, m.labels, JSON.stringify(m.metrics ?? {})],
  );
}

/** Every label with a published model, by name. */
export async function labels(db: Queryable): Promise<string[]> {
  const res = await db.query<{ name: string }>('SELECT DISTINCT name FROM models ORDER BY name');
  return res.rows.map((r) => r.name);
}

/** The version in production for a label (its student's stage), or null. */
export async function productionVersion(db: Queryable, name: string): Promise<number | null> {
  const r = await db.query<{ version: number }>(`SELECT version FROM models WHERE name = $1 AND role = 'student' AND stage = 'production'`, [name]);
  return r.rows[0]?.version ?? null;
}

/** The rows of every published version (of one label, of one version), by name, newest version first, then role. */
export async function rows(db: Queryable, label?: string, version?: number): Promise<ModelRow[]> {
  const r = await db.query<ModelRow>(
    `SELECT name, version, role, stage, workflow_id, dataset_name, dataset_version, artifact_prefix, labels, created_at FROM models
     WHERE ($1::text IS NULL OR name = $1) AND ($2::int IS NULL OR version = $2) ORDER BY name, version DESC, role`,
    [label ?? null, version ?? null],
  );
  return r.rows;
}

/** The models a run published (student first). */
export async function ofRun(db: Queryable, workflowId: string): Promise<Array<Pick<ModelRow, 'role' | 'name' | 'version' | 'artifact_prefix' | 'stage'>>> {
  const models = await db.query<Pick<ModelRow, 'role' | 'name' | 'version' | 'artifact_prefix' | 'stage'>>(
    'SELECT role, name, version, artifact_prefix, stage FROM models WHERE workflow_id = $1 ORDER BY role DESC',
    [workflowId],
  );
  return models.rows;
}

/** The label's student that pre-annotates frames for people: the production one, else the newest candidate; undefined when none. */
export async function preAnnotator(db: Queryable, label: string): Promise<Pick<ModelRow, 'name' | 'version' | 'role' | 'artifact_prefix'> | undefined> {
  const m = await db.query<{ name: string; version: number; role: 'teacher' | 'student'; artifact_prefix: string }>(
    `SELECT name, version, role, artifact_prefix FROM models WHERE name = $1 AND role = 'student' AND stage <> 'archived'
     ORDER BY (stage = 'production') DESC, version DESC LIMIT 1`,
    [label],
  );
  return m.rows[0];
}

/** The stage of a version (its student's), locking the row until the transaction ends; undefined when there is no such version. */
export async function stageForUpdate(c: PoolClient, name: string, version: number): Promise<ModelStage | undefined> {
  const rows = await c.query<{ stage: ModelStage }>(`SELECT stage FROM models WHERE name = $1 AND version = $2 AND role = 'student' FOR UPDATE`, [
    name,
    version,
  ]);
  return rows.rows[0]?.stage;
}

/**
 * Move a version (both roles) to `to` and record the transition (with the gate's decision
 * that allowed a promotion).
 *
 * @param c a client inside the transaction holding the label's lock.
 * @returns the transition, `at` its row's time.
 * @throws the unique violation of `models_one_production` when the label would have two production versions.
 */
export async function setStage(
  c: PoolClient,
  t: { name: string; version: number; from: ModelStage | null; to: ModelStage; actor: string; reason: string; gate: GateDecision | null },
): Promise<ModelTransition> {
  await c.query('UPDATE models SET stage = $3 WHERE name = $1 AND version = $2', [t.name, t.version, t.to]);
  const r = await c.query<{ created_at: Date }>(
    'INSERT INTO model_transitions (name, version, from_stage, to_stage, actor, reason, gate) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING created_at',
    [t.name, t.version, t.from, t.to, t.actor, t.reason, t.gate ? JSON.stringify(t.gate) : null],
  );
  return { ...t, at: r.rows[0]!.created_at.toISOString() };
}

/** Record a version's publication as a candidate (a transition from no stage; once per version). */
export async function recordPublished(db: Queryable, name: string, version: number, actor: string): Promise<void> {
  await db.query(
    `INSERT INTO model_transitions (name, version, from_stage, to_stage, actor, reason)
     SELECT $1, $2, NULL, 'candidate', $3, 'published' WHERE NOT EXISTS (SELECT 1 FROM model_transitions WHERE name = $1 AND version = $2 AND from_stage IS NULL)`,
    [name, version, actor],
  );
}

/** Transitions of a label (or of one version), oldest first. */
export async function transitions(db: Queryable, name: string, version?: number): Promise<ModelTransition[]> {
  const r = await db.query<{
    name: string;
    version: number;
    from_stage: ModelStage | null;
    to_stage: ModelStage;
    actor: string;
    reason: string;
    gate: GateDecision | null;
    created_at: Date;
  }>(
    `SELECT name, version, from_stage, to_stage, actor, reason, gate, created_at FROM model_transitions
     WHERE name = $1 AND ($2::int IS NULL OR version = $2) ORDER BY id`,
    [name, version ?? null],
  );
  return r.rows.map((t) => ({
    name: t.name,
    version: t.version,
    from: t.from_stage,
    to: t.to_stage,
    actor: t.actor,
    reason: t.reason,
    gate: t.gate,
    at: t.created_at.toISOString(),
  }));
}

/**
 * The version that was last put in production before, other than `current` and not in
 * production now (what a rollback goes back to); undefined when none.
 *
 * @param current the production version (null: none).
 */
export async function previousProduction(db: Queryable, name: string, current: number | null): Promise<number | undefined> {
  const r = await db.query<{ version: number }>(
    `SELECT t.version FROM model_transitions t JOIN models m ON m.name = t.name AND m.version = t.version AND m.role = 'student'
     WHERE t.name = $1 AND t.to_stage = 'production' AND t.version <> $2 AND m.stage <> 'production' ORDER BY t.id DESC LIMIT 1`,
    [name, current ?? -1],
  );
  return r.rows[0]?.version;
}
