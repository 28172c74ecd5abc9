/**
 * What the labelling gateway reads from a Label Studio webhook call: whether it carries
 * our shared secret (compared in constant time), and the few ids of its payload.
 * Nothing else of the payload is kept: it includes the project's API token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The ids a webhook names, and what to do with them. */
export interface WebhookEvent {
  /** `ANNOTATION_CREATED`, `ANNOTATION_UPDATED`, `ANNOTATIONS_DELETED`, ... or `UNKNOWN` without payload. */
  action: string;
  /** Created or updated annotations. */
  annotationIds: number[];
  /** Deleted annotations (a deletion event carries nothing else). */
  deletedAnnotationIds: number[];
  taskIds: number[];
  projectId: number | null;
  /** `data.runId` of the task, when the payload has the task. */
  runId: string | null;
  /** The event names no annotation (no payload, or one we cannot read): the runs reconcile fully. */
  full: boolean;
}

/**
 * True when `given` equals `expected`, in time independent of where they differ (both
 * are hashed to 32 bytes first, so their lengths leak nothing either).
 */
export function secretMatches(given: string | undefined | null, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0) return false;
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

const posInt = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

/**
 * Read a webhook body. Tolerant: an empty body, a body that is not JSON, or a payload of
 * unexpected shape gives an event with `full: true` (reconcile everything) instead of an
 * error, because Label Studio sends `{action}` alone when a webhook has no payload, and
 * a deletion event carries only the deleted annotations' ids.
 */
export function parseWebhook(body: string): WebhookEvent {
  let j: Record<string, unknown> | undefined;
  try {
    j = obj(body.trim() ? JSON.parse(body) : undefined);
  } catch {
    j = undefined;
  }
  const action = typeof j?.['action'] === 'string' && /^[A-Z_]{1,64}$/.test(j['action']) ? j['action'] : 'UNKNOWN';
  const annotation = obj(j?.['annotation']);
  const annotations = Array.isArray(j?.['annotations']) ? (j!['annotations'] as unknown[]).map(obj) : [];
  const task = obj(j?.['task']);
  const project = obj(j?.['project']);
  const ids = [posInt(annotation?.['id']), ...annotations.map((a) => posInt(a?.['id']))].filter((x): x is number => x !== undefined);
  const deleted = action === 'ANNOTATIONS_DELETED' || action === 'ANNOTATION_DELETED';
  const taskIds = [posInt(annotation?.['task']), posInt(task?.['id']), ...annotations.map((a) => posInt(a?.['task']))].filter(
    (x): x is number => x !== undefined,
  );
  const runId = obj(task?.['data'])?.['runId'];
  return {
    action,
    annotationIds: deleted ? [] : [...new Set(ids)],
    deletedAnnotationIds: deleted ? [...new Set(ids)] : [],
    taskIds: [...new Set(taskIds)],
    projectId: posInt(project?.['id']) ?? posInt(task?.['project']) ?? posInt(annotation?.['project']) ?? null,
    runId: typeof runId === 'string' && runId.length <= 512 ? runId : null,
    full: ids.length === 0,
  };
}
