/**
 * `labeling_annotations`: the mirror of every Label Studio annotation of our tasks (empty
 * and skipped ones included), keyed by annotation id. The only place its SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool or
 * on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** An annotation as the mirror stores it. */
export interface AnnotationUpsert {
  annotationId: number;
  taskId: number;
  projectId: number;
  frameKey: string;
  /** The person's e-mail. */
  annotator: string;
  annotatorId: number;
  /** The choice; null for a skipped or empty annotation. */
  label: string | null;
  cancelled: boolean;
  /** Label Studio's `updated_at` of the annotation (ISO 8601). */
  updatedAt: string;
}

/**
 * Mirror an annotation (upsert by id). A copy older than the row (by Label Studio's
 * `updated_at`) is not written, nor one that changes nothing.
 *
 * @returns true when a row was written.
 */
export async function upsert(db: Queryable, a: AnnotationUpsert): Promise<boolean> {
  const up = await db.query(
    `INSERT INTO labeling_annotations (annotation_id, task_id, project_id, frame_key, annotator, annotator_id, label, cancelled, ls_updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (annotation_id) DO UPDATE SET annotator = EXCLUDED.annotator, annotator_id = EXCLUDED.annotator_id,
       label = EXCLUDED.label, cancelled = EXCLUDED.cancelled, ls_updated_at = EXCLUDED.ls_updated_at, synced_at = now()
     WHERE labeling_annotations.ls_updated_at < EXCLUDED.ls_updated_at
        OR labeling_annotations.label IS DISTINCT FROM EXCLUDED.label
           AND labeling_annotations.ls_updated_at = EXCLUDED.ls_updated_at`,
    [a.annotationId, a.taskId, a.projectId, a.frameKey, a.annotator, a.annotatorId, a.label, a.cancelled, a.updatedAt],
  );
  return (up.rowCount ?? 0) > 0;
}

/** Remove annotations from the mirror. @returns how many were there. */
export async function remove(db: Queryable, annotationIds: readonly number[]): Promise<number> {
  const r = await db.query(`DELETE FROM labeling_annotations WHERE annotation_id = ANY($1::bigint[])`, [annotationIds]);
  return r.rowCount ?? 0;
}

/** The mirrored annotations of tasks (`*_id`: bigint, as strings). */
export async function ofTasks(
  db: Queryable,
  taskIds: readonly number[],
): Promise<Array<{ annotation_id: string; task_id: string; ls_updated_at: Date; label: string | null }>> {
  const have = await db.query<{ annotation_id: string; task_id: string; ls_updated_at: Date; label: string | null }>(
    `SELECT annotation_id, task_id, ls_updated_at, label FROM labeling_annotations WHERE task_id = ANY($1::bigint[])`,
    [taskIds],
  );
  return have.rows;
}

/** Ids of the mirrored annotations of tasks. */
export async function idsOfTasks(db: Queryable, taskIds: readonly number[]): Promise<number[]> {
  const r = await db.query<{ annotation_id: string }>(`SELECT annotation_id FROM labeling_annotations WHERE task_id = ANY($1::bigint[])`, [taskIds]);
  return r.rows.map((x) => Number(x.annotation_id));
}

/** How many distinct people annotated a task (skipped annotations count, cancelled ones do not). */
export async function peopleOnTask(db: Queryable, taskId: number): Promise<number> {
  const people = await db.query(`SELECT DISTINCT annotator_id FROM labeling_annotations WHERE task_id = $1 AND NOT cancelled`, [taskId]);
  return people.rowCount ?? 0;
}

/**
 * How many distinct people gave each label to frames among `frameKeys` in the label's own
 * project (not cancelled, not empty). Empty when the labelling tables do not exist (a
 * database migrated before human labelling).
 */
export async function peoplePerLabelInLabelProject(
  db: Queryable,
  label: string,
  frameKeys: readonly string[],
): Promise<Array<{ frameKey: string; label: string; people: number }>> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('labeling_annotations')::text AS t`);
  if (!exists.rows[0]?.t || frameKeys.length === 0) return [];
  const r = await db.query<{ frame_key: string; label: string; people: string }>(
    `SELECT la.frame_key, la.label, count(DISTINCT la.annotator) AS people FROM labeling_annotations la
     JOIN labeling_projects lp ON lp.project_id = la.project_id AND lp.label = $2
     WHERE la.frame_key = ANY($1) AND la.label IS NOT NULL AND NOT la.cancelled GROUP BY la.frame_key, la.label`,
    [frameKeys, label],
  );
  return r.rows.map((x) => ({ frameKey: x.frame_key, label: x.label, people: Number(x.people) }));
}

/** Remove every mirrored annotation of a project (benches clean up after themselves). */
export async function removeOfProject(db: Queryable, projectId: number): Promise<void> {
  await db.query(`DELETE FROM labeling_annotations WHERE project_id = $1`, [projectId]);
}
