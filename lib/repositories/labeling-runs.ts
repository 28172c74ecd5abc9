/**
 * `labeling_runs`: the runs waiting for people in Label Studio (what the gateway routes
 * webhooks to) and how each wait ended. The only place its SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool or
 * on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** A run's wait as `reelset labeling status` reads it once it is over. */
export interface LabelingRunStatus<S> {
  status: string;
  deadline: Date;
  on_deadline: string;
  /** Tasks sent to people. */
  tasks: number;
  /** What the wait ended with (the label step's summary, or `{reason}`), JSON; null while waiting. */
  summary: S | null;
  /** The label's project page, when the project is recorded. */
  url: string | null;
}

/** Record that a run waits for people (again: a retried attempt updates the wait). */
export async function recordWaiting(
  db: Queryable,
  r: { workflowId: string; label: string; projectId: number; deadline: string; onDeadline: string; tasks: number },
): Promise<void> {
  await db.query(
    `INSERT INTO labeling_runs (workflow_id, label, project_id, status, deadline, on_deadline, tasks) VALUES ($1, $2, $3, 'waiting', $4, $5, $6)
     ON CONFLICT (workflow_id) DO UPDATE SET project_id = EXCLUDED.project_id, status = 'waiting', deadline = EXCLUDED.deadline,
       on_deadline = EXCLUDED.on_deadline, tasks = EXCLUDED.tasks`,
    [r.workflowId, r.label, r.projectId, r.deadline, r.onDeadline, r.tasks],
  );
}

/** Record that a run's wait is over with its label step's summary (JSON). */
export async function recordFinished(db: Queryable, workflowId: string, summary: unknown): Promise<void> {
  await db.query(`UPDATE labeling_runs SET status = 'finished', summary = $2, finished_at = now() WHERE workflow_id = $1`, [
    workflowId,
    JSON.stringify(summary),
  ]);
}

/** Record that a run's wait ended without a label step (`failed`, with `{reason}` as summary). */
export async function recordClosed(db: Queryable, workflowId: string, status: 'failed', summary: unknown): Promise<void> {
  await db.query(`UPDATE labeling_runs SET status = $2, summary = $3, finished_at = now() WHERE workflow_id = $1`, [
    workflowId,
    status,
    JSON.stringify(summary),
  ]);
}

/** A run's wait with its project's URL; undefined when the run never waited for people. */
export async function statusOf<S>(db: Queryable, workflowId: string): Promise<LabelingRunStatus<S> | undefined> {
  const r = await db.query<LabelingRunStatus<S>>(
    `SELECT lr.status, lr.deadline, lr.on_deadline, lr.tasks, lr.summary, lp.url FROM labeling_runs lr
     LEFT JOIN labeling_projects lp ON lp.project_id = lr.project_id WHERE lr.workflow_id = $1`,
    [workflowId],
  );
  return r.rows[0];
}

/** The waiting runs that have one of these tasks. */
export async function waitingForTasks(db: Queryable, taskIds: readonly number[]): Promise<string[]> {
  const r = await db.query<{ workflow_id: string }>(
    `SELECT DISTINCT lt.workflow_id FROM labeling_tasks lt JOIN labeling_runs lr ON lr.workflow_id = lt.workflow_id
     WHERE lt.task_id = ANY($1::bigint[]) AND lr.status = 'waiting'`,
    [taskIds],
  );
  return r.rows.map((x) => x.workflow_id);
}

/** The waiting runs that have a task these (mirrored) annotations were made on. */
export async function waitingForAnnotations(db: Queryable, annotationIds: readonly number[]): Promise<string[]> {
  const r = await db.query<{ workflow_id: string }>(
    `SELECT DISTINCT lt.workflow_id FROM labeling_annotations la JOIN labeling_tasks lt ON lt.task_id = la.task_id
     JOIN labeling_runs lr ON lr.workflow_id = lt.workflow_id WHERE la.annotation_id = ANY($1::bigint[]) AND lr.status = 'waiting'`,
    [annotationIds],
  );
  return r.rows.map((x) => x.workflow_id);
}

/** The waiting runs of a project (of every project when `projectId` is null). */
export async function waiting(db: Queryable, projectId: number | null): Promise<string[]> {
  const r =
    projectId !== null
      ? await db.query<{ workflow_id: string }>(`SELECT workflow_id FROM labeling_runs WHERE status = 'waiting' AND project_id = $1`, [projectId])
      : await db.query<{ workflow_id: string }>(`SELECT workflow_id FROM labeling_runs WHERE status = 'waiting'`, []);
  return r.rows.map((x) => x.workflow_id);
}
