/**
 * Deterministic workflow ids of business entities: the same request gets the same id,
 * so starting it again attaches to the run instead of making a second one. Pure.
 */
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

/** Id of a new-category run: `new-category-<label>-<hash of the whole, defaulted input>`. */
export function newCategoryWorkflowId(input: NewCategoryInput): string {
  return `new-category-${keySegment(input.label.replace(/[^a-z0-9-]+/g, '-'))}-${shortHash(stableJson(input))}`;
}

/** Id of the extract child of a run for one video: `<parent id>/extract/<video id>`. */
export function extractChildWorkflowId(parentId: string, videoId: string): string {
  return `${parentId}/extract/${videoId}`;
}
