/**
 * `labeling_tasks`: the Label Studio tasks each run waits for (a task made by an earlier run
 * and still not done is reused, so a task may belong to several runs), with the split, the
 * people each needs and when its annotations were last mirrored. The only place its SQL is
 * written (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a
 * pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** One of our tasks, as `labeling_tasks` knows it. */
export interface KnownTask {
  taskId: number;
  projectId: number;
  frameKey: string;
  /** The run that first sent the task: human rows in `frame_labels` carry it. */
  ownerWorkflowId: string;
}

/** A task a run sends to people. */
export interface TaskRecord {
  taskId: number;
  workflowId: string;
  projectId: number;
  frameKey: string;
  videoId: string;
  split: 'train' | 'validation';
  /** Distinct people whose annotations the run waits for. */
  required: number;
  weakLabel: string;
  weakConfidence: number;
  uncertainty: number;
}

/** A task of a run with one of its annotations (all annotation fields null for a task with none; `*_id`: bigint, as strings). */
export interface TaskVoteRow {
  task_id: string;
  frame_key: string;
  split: string;
  required: number;
  annotation_id: string | null;
  annotator: string | null;
  label: string | null;
  ls_updated_at: Date | null;
}

/** Record a run's task; recorded again (a retried attempt, a reused task), it keeps the larger number of people required. */
export async function record(db: Queryable, t: TaskRecord): Promise<void> {
  await db.query(
    `INSERT INTO labeling_tasks (task_id, workflow_id, project_id, frame_key, video_id, split, required, weak_label, weak_confidence, uncertainty)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (task_id, workflow_id) DO UPDATE SET required = GREATEST(labeling_tasks.required, EXCLUDED.required)`,
    [t.taskId, t.workflowId, t.projectId, t.frameKey, t.videoId, t.split, t.required, t.weakLabel, t.weakConfidence, t.uncertainty],
  );
}

/** A run's tasks and their project. */
export async function ofRun(db: Queryable, workflowId: string): Promise<Array<{ taskId: number; projectId: number }>> {
  const rows = await db.query<{ task_id: string; project_id: string }>('SELECT task_id, project_id FROM labeling_tasks WHERE workflow_id = $1', [workflowId]);
  return rows.rows.map((r) => ({ taskId: Number(r.task_id), projectId: Number(r.project_id) }));
}

/** Ask a third person for a task (every run's row of it): its required people become 3 where fewer. */
export async function requireThirdPerson(db: Queryable, taskId: number): Promise<void> {
  await db.query('UPDATE labeling_tasks SET required = 3 WHERE task_id = $1 AND required < 3', [taskId]);
}

/** Our tasks among `taskIds` (any run; the owner is the run that recorded it first), by task id. */
export async function known(db: Queryable, taskIds: readonly number[]): Promise<Map<number, KnownTask>> {
  if (taskIds.length === 0) return new Map();
  const r = await db.query<{ task_id: string; project_id: string; frame_key: string; workflow_id: string }>(
    `SELECT DISTINCT ON (task_id) task_id, project_id, frame_key, workflow_id FROM labeling_tasks
     WHERE task_id = ANY($1::bigint[]) ORDER BY task_id, created_at, workflow_id`,
    [taskIds],
  );
  return new Map(
    r.rows.map((x) => [
      Number(x.task_id),
      { taskId: Number(x.task_id), projectId: Number(x.project_id), frameKey: x.frame_key, ownerWorkflowId: x.workflow_id },
    ]),
  );
}

/** When the tasks' annotations were last mirrored (Label Studio's `updated_at` of the task then; null: never), by task id. */
export async function lastMirrored(db: Queryable, taskIds: readonly number[]): Promise<Map<number, Date | null>> {
  const rec = await db.query<{ task_id: string; u: Date | null }>(
    `SELECT task_id, max(ls_updated_at) AS u FROM labeling_tasks WHERE task_id = ANY($1::bigint[]) GROUP BY task_id`,
    [taskIds],
  );
  return new Map(rec.rows.map((r) => [Number(r.task_id), r.u]));
}

/** Record that tasks were mirrored at their Label Studio `updated_at` (ISO 8601), every run's row of them. */
export async function recordMirrored(db: Queryable, tasks: ReadonlyArray<{ id: number; updatedAt: string }>): Promise<void> {
  await db.query(`UPDATE labeling_tasks SET ls_updated_at = x.u FROM unnest($1::bigint[], $2::timestamptz[]) AS x(id, u) WHERE labeling_tasks.task_id = x.id`, [
    tasks.map((t) => t.id),
    tasks.map((t) => t.updatedAt),
  ]);
}

/** Every task of a run with each of its annotations (one row per annotation, one for a task with none), by task id. */
export async function votesOfRun(db: Queryable, workflowId: string): Promise<TaskVoteRow[]> {
  const r = await db.query<TaskVoteRow>(
    `SELECT lt.task_id, lt.frame_key, lt.split, lt.required, la.annotation_id, la.annotator, la.label, la.ls_updated_at
     FROM labeling_tasks lt LEFT JOIN labeling_annotations la ON la.task_id = lt.task_id
     WHERE lt.workflow_id = $1 ORDER BY lt.task_id`,
    [workflowId],
  );
  return r.rows;
}

/**
 * Frames waiting for people, per label: tasks of runs still waiting that fewer distinct
 * people have annotated than the task needs (a skipped annotation counts), each task once.
 */
export async function waitingForPeopleByLabel(db: Queryable): Promise<Array<{ label: string; depth: number }>> {
  const res = await db.query<{ label: string; depth: string }>(
    `SELECT lr.label, count(DISTINCT lt.task_id) FILTER (WHERE p.people < lt.required) AS depth
       FROM labeling_runs lr
       JOIN labeling_tasks lt ON lt.workflow_id = lr.workflow_id
       CROSS JOIN LATERAL (SELECT count(DISTINCT la.annotator_id) AS people FROM labeling_annotations la WHERE la.task_id = lt.task_id) p
      WHERE lr.status = 'waiting'
      GROUP BY lr.label`,
  );
  return res.rows.map((r) => ({ label: r.label, depth: Number(r.depth) }));
}

/**
 * Record tasks of one video for a run in one statement (benches: split `train`, one person,
 * weak label `a`, confidence 1, uncertainty 0), the i-th task on the i-th frame key.
 */
export async function recordSynthetic(
  db: Queryable,
  workflowId: string,
  projectId: number,
  videoId: string,
  taskIds: readonly number[],
  frameKeys: readonly string[],
): Promise<void> {
  await db.query(
    `INSERT INTO labeling_tasks (task_id, workflow_id, project_id, frame_key, video_id, split, required, weak_label, weak_confidence, uncertainty)
     SELECT id, $2, $3, k, $5, 'train', 1, 'a', 1, 0 FROM unnest($1::bigint[], $4::text[]) AS t(id, k)`,
    [taskIds, workflowId, projectId, frameKeys, videoId],
  );
}
