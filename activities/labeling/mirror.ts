/**
 * Mirror of Label Studio's annotations of our tasks in Postgres: `labeling_annotations`
 * (every annotation, empty and skipped ones included) and, for annotations with a
 * choice, a `frame_labels` row with source `human`, the annotator and the annotation id.
 *
 * Everything is keyed by the annotation id, so the webhook path, the reconciliation
 * poll and retried activities all converge on the same rows: nothing is lost twice,
 * nothing is counted twice. A row never goes back in time (an older copy of an
 * annotation, fetched before a newer one was written, does not overwrite it).
 */
import type { Pool, PoolClient } from 'pg';
import type { Agreement, LabelingCounts } from '../../contracts';
import { cohenKappa, firstPair, resolveVotes, type Resolution, type Vote } from '../../lib/agreement';
import { withTransaction } from '../../lib/db';
import { annotatorIdOf, choiceOf, type LabelStudioClient, type LsAnnotation } from '../../lib/label-studio';
import { repos } from '../../lib/repositories';
import { CHOICES_NAME } from './project';

/** One of our tasks, as `labeling_tasks` knows it. */
export interface KnownTask {
  taskId: number;
  projectId: number;
  frameKey: string;
  /** The run that first sent the task: human rows in `frame_labels` carry it. */
  ownerWorkflowId: string;
}

/** Our tasks among `taskIds` (any run), by task id. */
export async function knownTasks(pool: Pool | PoolClient, taskIds: number[]): Promise<Map<number, KnownTask>> {
  if (taskIds.length === 0) return new Map();
  const r = await pool.query<{ task_id: string; project_id: string; frame_key: string; workflow_id: string }>(
    `SELECT DISTINCT ON (task_id) task_id, project_id, frame_key, workflow_id FROM labeling_tasks
     WHERE task_id = ANY($1::bigint[]) ORDER BY task_id, created_at, workflow_id`,
    [taskIds],
  );
  return new Map(r.rows.map((x) => [Number(x.task_id), { taskId: Number(x.task_id), projectId: Number(x.project_id), frameKey: x.frame_key, ownerWorkflowId: x.workflow_id }]));
}

/**
 * Write one annotation of a known task (upsert by annotation id; skipped when Postgres
 * already has this or a newer version).
 *
 * @returns true when a row changed.
 */
export async function upsertAnnotation(pool: Pool, ls: LabelStudioClient, task: KnownTask, a: LsAnnotation): Promise<boolean> {
  const annotatorId = annotatorIdOf(a);
  const annotator = typeof a.completed_by === 'object' && a.completed_by.email ? a.completed_by.email : await ls.userEmail(annotatorId);
  const label = a.was_cancelled ? null : choiceOf(a.result, CHOICES_NAME);
  return withTransaction(pool, async (c) => {
    const up = await c.query(
      `INSERT INTO labeling_annotations (annotation_id, task_id, project_id, frame_key, annotator, annotator_id, label, cancelled, ls_updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (annotation_id) DO UPDATE SET annotator = EXCLUDED.annotator, annotator_id = EXCLUDED.annotator_id,
         label = EXCLUDED.label, cancelled = EXCLUDED.cancelled, ls_updated_at = EXCLUDED.ls_updated_at, synced_at = now()
       WHERE labeling_annotations.ls_updated_at < EXCLUDED.ls_updated_at
          OR labeling_annotations.label IS DISTINCT FROM EXCLUDED.label
             AND labeling_annotations.ls_updated_at = EXCLUDED.ls_updated_at`,
      [a.id, task.taskId, task.projectId, task.frameKey, annotator, annotatorId, label, a.was_cancelled, a.updated_at],
    );
    if (up.rowCount === 0) return false;
    if (label === null) {
      await repos.frameLabels.removeOfAnnotation(c, a.id);
    } else {
      await repos.frameLabels.upsertHuman(c, { frameKey: task.frameKey, workflowId: task.ownerWorkflowId, label, annotator, annotationId: a.id });
    }
    return true;
  });
}

/** Remove annotations (deleted in Label Studio) and their human labels. @returns how many were mirrored. */
export async function removeAnnotations(pool: Pool, annotationIds: number[]): Promise<number> {
  if (annotationIds.length === 0) return 0;
  return withTransaction(pool, async (c) => {
    await repos.frameLabels.removeHumanOfAnnotations(c, annotationIds);
    const r = await c.query(`DELETE FROM labeling_annotations WHERE annotation_id = ANY($1::bigint[])`, [annotationIds]);
    return r.rowCount ?? 0;
  });
}

/**
 * Bring the mirror of some tasks in line with what Label Studio lists for them: new and
 * changed annotations written, annotations no longer there removed (a deletion whose
 * webhook was lost).
 *
 * @param lsTasks tasks as listed with `fields=all` (annotations included), by task id.
 * @returns counts of annotations written and removed.
 */
export async function reconcileTasks(
  pool: Pool,
  ls: LabelStudioClient,
  tasks: Map<number, KnownTask>,
  lsTasks: Map<number, { annotations?: LsAnnotation[] }>,
): Promise<{ written: number; removed: number }> {
  const ids = [...tasks.keys()].filter((id) => lsTasks.has(id));
  if (ids.length === 0) return { written: 0, removed: 0 };
  const have = await pool.query<{ annotation_id: string; task_id: string; ls_updated_at: Date; label: string | null }>(
    `SELECT annotation_id, task_id, ls_updated_at, label FROM labeling_annotations WHERE task_id = ANY($1::bigint[])`,
    [ids],
  );
  const known = new Map(have.rows.map((r) => [Number(r.annotation_id), r]));
  let written = 0;
  const present = new Set<number>();
  for (const id of ids) {
    for (const a of lsTasks.get(id)!.annotations ?? []) {
      present.add(a.id);
      const k = known.get(a.id);
      const label = a.was_cancelled ? null : choiceOf(a.result, CHOICES_NAME);
      if (k && k.ls_updated_at.getTime() >= Date.parse(a.updated_at) && k.label === label) continue;
      if (await upsertAnnotation(pool, ls, tasks.get(id)!, a)) written++;
    }
  }
  const gone = [...known.keys()].filter((id) => !present.has(id));
  const removed = await removeAnnotations(pool, gone);
  return { written, removed };
}

/**
 * Reconcile tasks of a project at the cost of one cheap listing: the tasks' `updated_at`
 * (which moves with every annotation created, changed or deleted) is compared with the one
 * recorded at their last reconciliation, and only the tasks that moved are fetched with
 * their annotations and mirrored. Our tasks that Label Studio no longer has lose their
 * mirrored annotations.
 *
 * @param taskIds a run's tasks; without, every task of the project (those `labeling_tasks` knows are mirrored).
 * @returns what was written and removed, our tasks that are gone, and the listing (frame keys in `data`).
 */
export async function reconcileProjectTasks(
  pool: Pool,
  ls: LabelStudioClient,
  projectId: number,
  taskIds?: number[],
  onPage?: (seen: number) => void,
): Promise<{ written: number; removed: number; missing: number[]; listed: Awaited<ReturnType<LabelStudioClient['taskSummaries']>> }> {
  const listed = await ls.taskSummaries(projectId, taskIds, onPage);
  const present = new Set(listed.map((t) => t.id));
  const known = await knownTasks(pool, taskIds ?? listed.map((t) => t.id));
  const rec = await pool.query<{ task_id: string; u: Date | null }>(
    `SELECT task_id, max(ls_updated_at) AS u FROM labeling_tasks WHERE task_id = ANY($1::bigint[]) GROUP BY task_id`,
    [[...known.keys()]],
  );
  const recorded = new Map(rec.rows.map((r) => [Number(r.task_id), r.u]));
  const changed = listed.filter((t) => known.has(t.id) && recorded.get(t.id)?.getTime() !== Date.parse(t.updated_at)).map((t) => t.id);
  const full = await ls.tasksWithAnnotations(projectId, changed);
  const { written, removed } = await reconcileTasks(pool, ls, known, new Map(full.map((t) => [t.id, t])));
  const stamped = full.filter((t) => t.updated_at);
  if (stamped.length) {
    await pool.query(
      `UPDATE labeling_tasks SET ls_updated_at = x.u FROM unnest($1::bigint[], $2::timestamptz[]) AS x(id, u) WHERE labeling_tasks.task_id = x.id`,
      [stamped.map((t) => t.id), stamped.map((t) => t.updated_at)],
    );
  }
  const missing = [...known.keys()].filter((id) => !present.has(id));
  let gone = 0;
  if (missing.length) {
    const r = await pool.query<{ annotation_id: string }>(`SELECT annotation_id FROM labeling_annotations WHERE task_id = ANY($1::bigint[])`, [missing]);
    gone = await removeAnnotations(pool, r.rows.map((x) => Number(x.annotation_id)));
  }
  return { written, removed: removed + gone, missing, listed };
}

/** Every vote on the tasks of a run, with each task's split and the people it needs. */
export async function runVotes(
  pool: Pool,
  workflowId: string,
): Promise<Map<number, { frameKey: string; split: string; required: number; votes: Vote[] }>> {
  const r = await pool.query<{
    task_id: string; frame_key: string; split: string; required: number;
    annotation_id: string | null; annotator: string | null; label: string | null; ls_updated_at: Date | null;
  }>(
    `SELECT lt.task_id, lt.frame_key, lt.split, lt.required, la.annotation_id, la.annotator, la.label, la.ls_updated_at
     FROM labeling_tasks lt LEFT JOIN labeling_annotations la ON la.task_id = lt.task_id
     WHERE lt.workflow_id = $1 ORDER BY lt.task_id`,
    [workflowId],
  );
  const out = new Map<number, { frameKey: string; split: string; required: number; votes: Vote[] }>();
  for (const x of r.rows) {
    const id = Number(x.task_id);
    if (!out.has(id)) out.set(id, { frameKey: x.frame_key, split: x.split, required: x.required, votes: [] });
    if (x.annotation_id !== null) {
      out.get(id)!.votes.push({ annotationId: Number(x.annotation_id), annotator: x.annotator!, label: x.label, updatedAt: x.ls_updated_at!.toISOString() });
    }
  }
  return out;
}

/** Agreement of the first two people on the validation frames both labelled. */
export function validationAgreement(tasks: Iterable<{ split: string; votes: Vote[] }>): Agreement {
  const pairs: Array<[string, string]> = [];
  for (const t of tasks) {
    if (t.split !== 'validation') continue;
    const p = firstPair(t.votes);
    if (p) pairs.push(p);
  }
  return cohenKappa(pairs);
}

/** Counts of a run's tasks from the mirror: done, labelled, annotations, validation agreement. */
export function countsOf(tasks: Map<number, { split: string; required: number; votes: Vote[] }>): LabelingCounts & { resolutions: Map<number, Resolution> } {
  let done = 0;
  let labelled = 0;
  let annotations = 0;
  let vTasks = 0;
  let vDone = 0;
  const resolutions = new Map<number, Resolution>();
  for (const [id, t] of tasks) {
    const r = resolveVotes(t.votes, t.required);
    resolutions.set(id, r);
    annotations += t.votes.length;
    if (r.status !== 'pending') done++;
    if (r.status === 'agreed') labelled++;
    if (t.split === 'validation') {
      vTasks++;
      if (r.status !== 'pending') vDone++;
    }
  }
  return { tasks: tasks.size, done, labelled, annotations, validation: { tasks: vTasks, done: vDone, ...validationAgreement(tasks.values()) }, resolutions };
}
