/**
 * The catalog side of a backfill: ingest new videos from a source (S3 prefix, folder,
 * catalog file), select every catalog video of the label, and cut the selection into
 * pages, each a run of its own whose search manifest the existing extract and embed
 * steps read.
 */
import type { Pool } from 'pg';
import { type IngestSourceSummary, type SearchHit, type StepManifest } from '../../contracts';
import { searchCatalog } from '../../domain/catalog-search';
import { repos } from '../../lib/repositories';
import { type IngestReport } from './ingest';

/** Files ingested at once by `ingestSource` (each: download or read, sha256, upload, ffprobe, one transaction). */
export const INGEST_CONCURRENCY = 4;

/** What a backfill selects: the label's videos, narrowed by at most one selector. */
export interface SelectQuery {
  label: string;
  /** ISO date (midnight UTC) or time: videos ingested at or after it. */
  since?: string;
  /** Only these ids (requested by the user). */
  videoIds?: string[];
  /** Only these ids (what a source ingested). */
  onlyIds?: string[];
}

/** The selection: videos of the label in id order, and the requested ids left out. */
export interface Selection {
  label: string;
  hits: SearchHit[];
  /** Requested ids that are not in the catalog. */
  missing: string[];
  /** Requested ids in the catalog that do not carry the label (nor a descendant, synonym or title match). */
  notOfLabel: string[];
}

/** `2026-03-01` → `2026-03-01T00:00:00Z`; a time is kept as it is. */
export function sinceTimestamp(since: string): string {
  return /^\d{4}-\d{2}-\d{2}$/.test(since) ? `${since}T00:00:00Z` : since;
}

/**
 * Every catalog video of a label, as the search finds positives (the label, its
 * descendants, synonyms and title words) with no cap, narrowed by `since` or an id
 * list, sorted by video id. Used by the `selectBackfill` activity and by the CLI, which
 * digests the same selection into the backfill's id.
 */
export async function selectCatalogVideos(pool: Pool, q: SelectQuery): Promise<Selection> {
  const { resolved, hits } = await searchCatalog(pool, { label: q.label, maxPositiveVideos: Number.MAX_SAFE_INTEGER, maxNegativeVideos: 0, seed: 0 });
  let selected = hits.filter((h) => h.role === 'positive');
  let missing: string[] = [];
  let notOfLabel: string[] = [];
  if (q.since) {
    const recent = new Set(await repos.videos.idsCreatedSince(pool, sinceTimestamp(q.since)));
    selected = selected.filter((h) => recent.has(h.videoId));
  }
  const ids = q.videoIds ?? q.onlyIds;
  if (ids) {
    const known = new Set(await repos.videos.existingIds(pool, ids));
    const byId = new Map(selected.map((h) => [h.videoId, h]));
    missing = ids.filter((id) => !known.has(id));
    notOfLabel = ids.filter((id) => known.has(id) && !byId.has(id));
    const wanted = new Set(ids);
    selected = selected.filter((h) => wanted.has(h.videoId));
  }
  selected.sort((a, b) => (a.videoId < b.videoId ? -1 : a.videoId > b.videoId ? 1 : 0));
  return { label: resolved.label, hits: selected, missing, notOfLabel };
}

/** Run `fn` over `items`, at most `limit` at once, in order of start; stops starting new ones once `signal` aborts. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
}

/** Manifest of the ingest step: the ids ingested (in listing order) and every failure. */
export interface IngestManifest extends StepManifest<IngestSourceSummary> {
  ids: string[];
  failures: IngestReport['failed'];
}

export function emptyReport(): IngestReport {
  return { inserted: [], updated: [], unchanged: [], uploaded: 0, failed: [] };
}
