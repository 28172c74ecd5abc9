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
import type { Pool } from 'pg';
import type { Agreement, LabelingCounts } from '../../contracts';
import { cohenKappa, firstPair, resolveVotes, type Resolution, type Vote } from '../../domain/agreement';
import { withTransaction, type Queryable } from '../../lib/db';
import { annotatorIdOf, choiceOf, type LabelStudioClient, type LsAnnotation } from '../../lib/label-studio';
import { repos } from '../../lib/repositories';
import type { KnownTask } from '../../lib/repositories/labeling-tasks';
import { CHOICES_NAME } from './project';

export type { KnownTask };

/** Our tasks among `taskIds` (any run), by task id. */
export async function knownTasks(pool: Queryable, taskIds: number[]): Promise<Map<number, KnownTask>> {
  return repos.labelingTasks.known(pool, taskIds);
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
    const written = await repos.labelingAnnotations.upsert(c, {
      annotationId: a.id,
      taskId: task.taskId,
      projectId: task.projectId,
      frameKey: task.frameKey,
      annotator,
      annotatorId,
      label,
      cancelled: a.was_cancelled,
      updatedAt: a.updated_at,
    });
    if (!written) return false;
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
    return repos.labelingAnnotations.remove(c, annotationIds);
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
  const have = await repos.labelingAnnotations.ofTasks(pool, ids);
  const known = new Map(have.map((r) => [Number(r.annotation_id), r]));
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
  const recorded = await repos.labelingTasks.lastMirrored(pool, [...known.keys()]);
  const changed = listed.filter((t) => known.has(t.id) && recorded.get(t.id)?.getTime() !== Date.parse(t.updated_at)).map((t) => t.id);
  const full = await ls.tasksWithAnnotations(projectId, changed);
  const { written, removed } = await reconcileTasks(pool, ls, known, new Map(full.map((t) => [t.id, t])));
  const stamped = full.filter((t) => t.updated_at);
  if (stamped.length)
    await repos.labelingTasks.recordMirrored(
      pool,
      stamped.map((t) => ({ id: t.id, updatedAt: t.updated_at! })),
    );
  const missing = [...known.keys()].filter((id) => !present.has(id));
  let gone = 0;
  if (missing.length) {
    gone = await removeAnnotations(pool, await repos.labelingAnnotations.idsOfTasks(pool, missing));
  }
  return { written, removed: removed + gone, missing, listed };
}

/** Every vote on the tasks of a run, with each task's split and the people it needs. */
export async function runVotes(pool: Pool, workflowId: string): Promise<Map<number, { frameKey: string; split: string; required: number; votes: Vote[] }>> {
  const out = new Map<number, { frameKey: string; split: string; required: number; votes: Vote[] }>();
  for (const x of await repos.labelingTasks.votesOfRun(pool, workflowId)) {
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
