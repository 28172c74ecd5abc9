/**
 * Human labelling activities (CPU video task queue): send a run's representatives to
 * people in Label Studio, mirror their annotations into Postgres, and turn them into
 * the label step's manifest when the run stops waiting. The waiting itself is the
 * labelling child workflow (`workflows/labeling.ts`); webhooks reach it through the
 * gateway (`workers/labeling-gateway.ts`).
 */
import { Context } from '@temporalio/activity';
import { NEGATIVE_LABEL } from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { LabelStudioClient } from '../../lib/label-studio';
import { knownTasks, removeAnnotations, upsertAnnotation } from './mirror';

export const round4 = (x: number | null) => (x === null ? null : Math.round(x * 1e4) / 1e4);

/** Tasks imported per request. */
export const IMPORT_BATCH = 100;

/** A Label Studio client from the configuration. */
export function labelStudioOf(deps: Pick<ActivityDeps, 'config'>): LabelStudioClient {
  return new LabelStudioClient(deps.config.LABEL_STUDIO_URL, deps.config.LABEL_STUDIO_API_TOKEN);
}

export function heartbeat(details?: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Called outside an activity (the gateway applies events with the same code).
  }
}

/** Order labels for a manifest: the run's label, the others alphabetically, `other` last. */
export function orderLabels(label: string, present: Iterable<string>): string[] {
  const rest = [...new Set(present)].filter((l) => l !== label && l !== NEGATIVE_LABEL).sort();
  return [label, ...rest, NEGATIVE_LABEL];
}

/**
 * Apply one gateway event directly (no run is waiting for it): fetch and mirror the
 * named annotations, remove the deleted ones. Used by the gateway after a run's wait
 * ended, so that a later change in Label Studio still reaches Postgres.
 */
export async function applyLabelingEvent(
  deps: Pick<ActivityDeps, 'pool' | 'config'>,
  ls: LabelStudioClient,
  event: { annotationIds: number[]; deletedAnnotationIds: number[] },
): Promise<{ written: number; removed: number }> {
  let written = 0;
  const removed = await removeAnnotations(deps.pool, event.deletedAnnotationIds);
  for (const id of event.annotationIds) {
    const a = await ls.getAnnotation(id);
    if (!a) {
      await removeAnnotations(deps.pool, [id]);
      continue;
    }
    const task = (await knownTasks(deps.pool, [a.task])).get(a.task);
    if (task && (await upsertAnnotation(deps.pool, ls, task, a))) written++;
  }
  return { written, removed };
}
