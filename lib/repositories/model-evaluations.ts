/**
 * `model_evaluations`: one evaluation of one published model on one version of its label's
 * evaluation set (metrics, and the S3 key of the per-frame predictions). The only place its
 * SQL is written (docs/architecture.md, "Postgres: one owner per table"). Every function
 * runs on a pool or on a client inside the caller's transaction.
 */
import type { EvalSetMetrics, ModelEvaluation } from '../../contracts';
import type { Queryable } from '../db';

/** One evaluation of a model on an evaluation-set version, or null. */
export async function get(
  db: Queryable,
  name: string,
  version: number,
  evalVersion: number,
  role: 'teacher' | 'student' = 'student',
): Promise<ModelEvaluation | null> {
  const r = await db.query<{ metrics: EvalSetMetrics; predictions_key: string; created_at: Date }>(
    'SELECT metrics, predictions_key, created_at FROM model_evaluations WHERE name = $1 AND version = $2 AND role = $3 AND eval_version = $4',
    [name, version, role, evalVersion],
  );
  const row = r.rows[0];
  return row ? { name, version, role, evalVersion, metrics: row.metrics, predictionsKey: row.predictions_key, createdAt: row.created_at.toISOString() } : null;
}

/** Record an evaluation (idempotent: a second write of the same evaluation keeps the first). */
export async function record(db: Queryable, e: Omit<ModelEvaluation, 'createdAt'>): Promise<void> {
  await db.query(
    `INSERT INTO model_evaluations (name, version, role, eval_version, metrics, predictions_key) VALUES ($1,$2,$3,$4,$5,$6)
     ON CONFLICT (name, version, role, eval_version) DO NOTHING`,
    [e.name, e.version, e.role, e.evalVersion, JSON.stringify(e.metrics), e.predictionsKey],
  );
}
