import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Pool } from 'pg';
import { CatalogError, ReelsetError, videoKey } from '../../contracts';
import { withTransaction } from '../../lib/db';
import { sha256File } from '../../lib/hash';
import type { Logger } from '../../lib/logger';
import { ffprobeJson, type FfprobeJson } from '../../lib/media';
import { repos } from '../../lib/repositories';
import type { ObjectStore } from '../../lib/s3';
import type { ResolvedEntry, TaxonomyEntry } from './catalog-file';

/** Outcome of one ingest call. */
export interface IngestReport {
  /** Entries whose row was created. */
  inserted: string[];
  /** Entries whose row changed (labels, title, metadata). */
  updated: string[];
  /** Entries already present and identical: the no-op of a re-ingest. */
  unchanged: string[];
  /** Files uploaded to S3 (absent before). */
  uploaded: number;
  /** Entries that could not be ingested, with why; the others still are. */
  failed: Array<{ id: string; file: string; reason: string }>;
}

/**
 * Upsert a label taxonomy (parents first): parent, synonyms and declared exclusions of
 * each entry (replaced by the file's). Labels named only as a parent or an exclusion are
 * created bare; labels referenced only by videos are created without a parent by
 * {@link ingestCatalog}. Idempotent: an unchanged entry writes nothing.
 *
 * @returns the number of entries.
 */
export async function upsertTaxonomy(pool: Pool, taxonomy: TaxonomyEntry[]): Promise<number> {
  const byName = new Map(taxonomy.map((t) => [t.name, t]));
  const done = new Set<string>();
  const ordered: TaxonomyEntry[] = [];
  const visit = (t: TaxonomyEntry, depth = 0) => {
    if (done.has(t.name) || depth > 32) return;
    const parent = t.parent ? byName.get(t.parent) : undefined;
    if (parent) visit(parent, depth + 1);
    done.add(t.name);
    ordered.push(t);
  };
  taxonomy.forEach((t) => visit(t));
  await withTransaction(pool, async (c) => {
    for (const t of ordered) {
      for (const other of [t.parent, ...t.excludes]) if (other) await repos.labels.ensure(c, other);
      await repos.labels.upsertEntry(c, { name: t.name, parent: t.parent, synonyms: t.synonyms, excludes: [...new Set(t.excludes)].sort() });
    }
  });
  return ordered.length;
}

/**
 * Catalog metadata of a video from ffprobe's JSON: the first video stream that is not
 * cover art (the extraction's own probe decides which stream it samples). Undefined
 * when there is no such stream.
 */
export function catalogMetadata(probe: FfprobeJson): NonNullable<ResolvedEntry['video']> | undefined {
  const v = probe.streams?.find((s) => s.codec_type === 'video' && (s['disposition'] as { attached_pic?: number } | undefined)?.attached_pic !== 1);
  if (!v) return undefined;
  const num = (x: unknown) => (Number.isFinite(Number(x)) && Number(x) > 0 ? Number(x) : undefined);
  const rate = typeof v['avg_frame_rate'] === 'string' ? (v['avg_frame_rate'] as string) : undefined;
  return {
    codec: v.codec_name,
    width: num(v['width']),
    height: num(v['height']),
    avg_frame_rate: rate && rate !== '0/0' ? rate : undefined,
    duration_s: num(probe.format?.duration) ?? num(v['duration']),
    has_audio: probe.streams?.some((s) => s.codec_type === 'audio'),
  };
}

/**
 * Ingest catalog entries: hash each file, upload it to S3 under its content-addressed
 * key (skipped when already there), and upsert the video, its labels and metadata.
 *
 * Idempotent: a second ingest of the same entries uploads nothing and changes no row
 * (reported as `unchanged`). One bad entry (missing file, sha256 mismatch) is reported
 * in `failed` and does not stop the others. Metadata comes from the entry's `video`
 * block when given, else from ffprobe; a file ffprobe cannot read is still ingested
 * (its extraction fails later, visibly, in its own child workflow).
 */
export async function ingestCatalog(
  deps: { pool: Pool; store: ObjectStore; logger: Logger; ffprobePath?: string },
  entries: ResolvedEntry[],
): Promise<IngestReport> {
  const report: IngestReport = { inserted: [], updated: [], unchanged: [], uploaded: 0, failed: [] };
  for (const entry of entries) {
    try {
      const stat = await fs.stat(entry.absPath).catch(() => {
        throw new CatalogError(`file not found: ${entry.absPath}`);
      });
      const sha = await sha256File(entry.absPath);
      if (entry.sha256 && entry.sha256 !== sha) {
        throw new CatalogError(`sha256 mismatch for ${entry.absPath}: catalog says ${entry.sha256}, file is ${sha}`);
      }
      const key = videoKey(sha, entry.file);
      const size = await deps.store.head(key);
      if (size !== stat.size) {
        await deps.store.client.send(
          new PutObjectCommand({
            Bucket: deps.store.bucket,
            Key: key,
            Body: createReadStream(entry.absPath),
            ContentLength: stat.size,
            ContentType: 'video/octet-stream',
          }),
        );
        report.uploaded++;
      }
      let meta = entry.video;
      if (!meta?.duration_s || !meta.width) {
        const probed = await ffprobeJson(entry.absPath, { ffprobePath: deps.ffprobePath }).catch((err: unknown) => ({ error: (err as Error).message }));
        if ('error' in probed) deps.logger.warn({ id: entry.id, err: probed.error }, 'ingest: ffprobe failed; stored without metadata');
        else meta = catalogMetadata(probed) ?? meta;
      }
      const outcome = await withTransaction(deps.pool, async (c) => {
        const existing = await repos.videos.sha256Of(c, entry.id);
        const dup = await repos.videos.idWithContent(c, sha, entry.id);
        if (dup !== undefined) throw new CatalogError(`same content already ingested as video ${JSON.stringify(dup)}`);
        let changed = await repos.videos.upsert(c, {
          id: entry.id,
          sha256: sha,
          s3Key: key,
          fileName: path.basename(entry.file),
          title: entry.description,
          bytes: stat.size,
          durationS: meta?.duration_s ?? null,
          width: meta?.width ?? null,
          height: meta?.height ?? null,
          codec: meta?.codec ?? null,
          frameRate: meta?.avg_frame_rate ?? null,
          hasAudio: meta?.has_audio ?? null,
          source: entry.source ?? {},
        });
        const labels = [...new Set(entry.labels)];
        for (const l of labels) await repos.labels.ensure(c, l);
        changed = (await repos.videoLabels.replaceCatalogLabels(c, entry.id, labels)) || changed;
        return existing === undefined ? 'inserted' : changed ? 'updated' : 'unchanged';
      });
      report[outcome].push(entry.id);
    } catch (err) {
      const reason = err instanceof ReelsetError ? err.message : `unexpected: ${(err as Error).message}`;
      if (!(err instanceof ReelsetError)) deps.logger.error({ err, id: entry.id }, 'ingest failed');
      report.failed.push({ id: entry.id, file: entry.absPath, reason });
    }
  }
  return report;
}
