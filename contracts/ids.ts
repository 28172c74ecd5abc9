/**
 * Deterministic workflow ids of business entities: the same request over the same data
 * gets the same id, so starting it again attaches to the run instead of making a second
 * one; the same request over changed data (new catalog entries of the label) gets a new
 * id, so it is never answered with a stale result. Pure.
 *
 * A run's identity is what it would produce: the fields that change its result, plus a
 * **generation**, the digest of what it reads as the client saw it when it chose the id
 * ({@link catalogDigest}). Fields that only say how to run it (concurrency, heartbeat
 * timeouts, task queues, history bounds) are left out, so a retry of the same work with
 * another concurrency still attaches.
 */
import type { BackfillInput } from './backfill';
import type { NewCategoryInput } from './inputs';
import { keySegment, shortHash } from './keys';

/** Stable JSON: object keys sorted, so equal inputs hash equally whatever their key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Fields of a new-category input that say how to run it, not what it makes: not part of its identity. */
export const NEW_CATEGORY_HOW_FIELDS = ['extractConcurrency', 'extractBatching', 'heartbeatTimeoutS', 'gpuTaskQueue', 'catalogGeneration'] as const;

/** Fields of a backfill input that say how to run it: not part of its identity. */
export const BACKFILL_HOW_FIELDS = ['concurrency', 'batching', 'pageSize', 'maxHistoryEvents', 'heartbeatTimeoutS', 'generation'] as const;

function omit(o: object, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

const labelSegment = (label: string) => keySegment(label.replace(/[^a-z0-9-]+/g, '-'));

/**
 * Digest of what a run reads from the catalog: the (video id, sha256, role) of every
 * video it selected, in video id order. 11 base-36 characters ({@link shortHash}); it
 * changes when a video is added to or removed from the selection, when a selected
 * video's content changes, or when one changes role (positive or negative).
 *
 * @example catalogDigest([{ videoId: 'v1', sha256: 'ab…', role: 'positive' }])
 */
export function catalogDigest(videos: ReadonlyArray<{ videoId: string; sha256: string; role?: string }>): string {
  const rows = videos.map((v) => [v.videoId, v.sha256, v.role ?? '']).sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
  return shortHash(stableJson(rows));
}

/**
 * Id of a new-category run: `new-category-<label>-<request hash>[-c<catalog generation>]`.
 *
 * The request hash covers every field that changes the result (label, caps, extraction,
 * dedupe, split, seed, training) and none of {@link NEW_CATEGORY_HOW_FIELDS}; the
 * suffix is `catalogGeneration` when the caller set it (the CLI sets it to the
 * {@link catalogDigest} of what the search would read now), so new videos of the label
 * make a new run while a retry of the same request over the same catalog attaches.
 */
export function newCategoryWorkflowId(input: NewCategoryInput): string {
  const generation = input.catalogGeneration ? `-c${keySegment(input.catalogGeneration)}` : '';
  return `new-category-${labelSegment(input.label)}-${shortHash(stableJson(omit(input, NEW_CATEGORY_HOW_FIELDS)))}${generation}`;
}

/**
 * Id of a backfill: `backfill-<label>-<request hash>[-g<generation>]`, the request hash
 * over label, selector (since, video ids, ingest source), extraction options and
 * `embed`; `generation` is the digest of what the client found to read (selected videos,
 * or the source's listing). A second backfill of the same label over an unchanged
 * catalog gets the same id and attaches to the first (which did the work).
 */
export function backfillWorkflowId(input: BackfillInput): string {
  const identity = omit({ ...input, videoIds: input.videoIds ? [...input.videoIds].sort() : undefined }, BACKFILL_HOW_FIELDS);
  const generation = input.generation ? `-g${keySegment(input.generation)}` : '';
  return `backfill-${labelSegment(input.label)}-${shortHash(stableJson(identity))}${generation}`;
}

/**
 * Run id of one page of a backfill: `<backfill id>-p<page + 1, 5 digits>`. A page is a
 * run of its own in S3 and Postgres (`runs/<page run>/{search,extract,embed}/`, a `runs`
 * row whose `parent_id` is the backfill), so the existing extract and embed steps work
 * on it unchanged.
 */
export function backfillPageRunId(backfillId: string, page: number): string {
  if (!Number.isInteger(page) || page < 0) throw new TypeError(`page must be an integer >= 0, got ${page}`);
  return `${backfillId}-p${String(page + 1).padStart(5, '0')}`;
}

/** Id of the extract child of a run for one video: `<parent id>/extract/<video id>`. */
export function extractChildWorkflowId(parentId: string, videoId: string): string {
  return `${parentId}/extract/${videoId}`;
}
