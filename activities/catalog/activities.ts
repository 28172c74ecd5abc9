import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { createWriteStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  backfillPageRunId,
  catalogDigest,
  CatalogError,
  DatasetError,
  MAX_REPORTED_FAILURES,
  type BackfillSelectSummary,
  type IngestSource,
  type IngestSourceSummary,
  type SearchSummary,
  type StepResult,
} from '../../contracts';
import { searchCatalog } from '../../domain/catalog-search';
import type { ActivityDeps } from '../../lib/deps';
import { sha256File } from '../../lib/hash';
import { repos } from '../../lib/repositories';
import { readStepManifest, runStep } from '../../lib/runs';
import { ObjectStore } from '../../lib/s3';
import { emptyReport, forEachLimit, INGEST_CONCURRENCY, type IngestManifest, selectCatalogVideos } from './backfill';
import { catalogFromFolder, readCatalogFile, type ResolvedEntry } from './catalog-file';
import { ingestCatalog, type IngestReport } from './ingest';
import { describeSource, listPrefix, parseS3Uri, type PrefixObject } from './sources';

/** Input of `searchVideos`. */
export interface SearchVideosInput {
  workflowId: string;
  label: string;
  maxPositiveVideos: number;
  maxNegativeVideos: number;
  seed: number;
}

/** Catalog activities (CPU video task queue): the search step, and a backfill's source ingest and selection. */
export function createCatalogActivities(deps: ActivityDeps) {
  const { pool, store, logger, config } = deps;

  /** Catalog labels of existing videos, by id (so a source adds its label without removing others). */
  async function catalogLabels(ids: string[]): Promise<Map<string, string[]>> {
    return repos.videoLabels.catalogLabelsOf(pool, ids);
  }

  return {
    /**
     * Step 1, search: catalog videos matching the label, plus sampled negatives.
     *
     * @throws DatasetError (not retried) when no video matches the label.
     */
    async searchVideos(input: SearchVideosInput): Promise<StepResult<SearchSummary>> {
      return runStep(deps, input.workflowId, 'search', async () => {
        const { resolved, hits } = await searchCatalog(deps.pool, input);
        const positives = hits.filter((h) => h.role === 'positive').length;
        if (positives === 0) {
          throw new DatasetError(`no catalog video matches label "${input.label}" (searched labels, synonyms and titles for: ${resolved.terms.join(', ')})`);
        }
        const summary: SearchSummary = {
          label: resolved.label,
          positives,
          negatives: hits.length - positives,
          videoIds: hits.map((h) => h.videoId),
          catalogDigest: catalogDigest(hits),
        };
        return { summary, extra: { terms: resolved.terms, hits } };
      });
    },

    /**
     * Ingest a source of new videos before a backfill (its `ingest` step, checkpointed
     * under `runs/<backfill>/ingest/`): every video object under an S3 prefix (same
     * endpoint and credentials as the bucket), every video file of a folder, or a
     * catalog file, the last two read from this worker's file system.
     *
     * Prefix and folder files get the backfill's label added to the labels they
     * already have; a catalog file's entries keep their own. Each file goes through the
     * catalog ingest (sha256, content-addressed upload to `videos/<sha256>`, ffprobe,
     * upsert), {@link INGEST_CONCURRENCY} at a time. Idempotent: an S3 object already
     * ingested with the same ETag and size is not downloaded again, and a file whose
     * content is in the bucket is not uploaded again. One bad file is reported (id,
     * file, reason) and the others go on. Heartbeats after every file; cancellation
     * stops it between files and removes the temporary copies.
     *
     * @throws CatalogError (not retried) when the source cannot be listed or read.
     */
    async ingestSource(input: { workflowId: string; label: string; source: IngestSource }): Promise<StepResult<IngestSourceSummary>> {
      return runStep(deps, input.workflowId, 'ingest', async () => {
        const ctx = Context.current();
        const signal = ctx.cancellationSignal;
        const source = describeSource(input.source);
        const report: IngestReport = { inserted: [], updated: [], unchanged: [], uploaded: 0, failed: [] };
        const ids: Array<string | undefined> = [];
        let skippedUnchanged = 0;
        let done = 0;
        const merge = (i: number, r: IngestReport) => {
          report.inserted.push(...r.inserted);
          report.updated.push(...r.updated);
          report.unchanged.push(...r.unchanged);
          report.uploaded += r.uploaded;
          report.failed.push(...r.failed);
          ids[i] = r.inserted[0] ?? r.updated[0] ?? r.unchanged[0];
        };
        const beat = () => ctx.heartbeat({ done: ++done });
        const ingestOne = async (entry: ResolvedEntry) => ingestCatalog({ pool, store, logger, ffprobePath: config.FFPROBE_PATH }, [entry]);
        let listed: number;

        if (input.source.kind === 'prefix') {
          const objects = await listPrefix(store, input.source.uri);
          listed = objects.length;
          const from = new ObjectStore(parseS3Uri(input.source.uri).bucket, store.client);
          const known = await repos.videos.fromS3Objects(
            pool,
            objects.map((o) => o.uri),
          );
          const knownByUri = new Map(known.map((r) => [r.uri, r]));
          const labelsOf = await catalogLabels(objects.map((o) => knownByUri.get(o.uri)?.id ?? o.id));
          await repos.labels.ensure(pool, input.label);
          const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-ingest-'));
          try {
            await forEachLimit(
              objects,
              INGEST_CONCURRENCY,
              async (o: PrefixObject, i) => {
                const k = knownByUri.get(o.uri);
                if (k && k.etag === o.etag && Number(k.bytes) === o.size) {
                  // Unchanged object: no download; make sure it carries the label.
                  const added = await repos.videoLabels.add(pool, k.id, input.label);
                  merge(i, { ...emptyReport(), [added ? 'updated' : 'unchanged']: [k.id] });
                  skippedUnchanged++;
                  beat();
                  return;
                }
                const id = k?.id ?? o.id;
                const file = path.join(tmp, `${i}${path.extname(o.fileName).toLowerCase()}`);
                try {
                  const res = await from.client.send(new GetObjectCommand({ Bucket: from.bucket, Key: o.key }), { abortSignal: signal });
                  await pipeline(res.Body as Readable, createWriteStream(file), { signal });
                  const labels = [...new Set([...(labelsOf.get(id) ?? []), input.label])];
                  const stem = path.basename(o.fileName, path.extname(o.fileName));
                  merge(
                    i,
                    await ingestOne({
                      id,
                      file: o.fileName,
                      absPath: file,
                      labels,
                      description: stem,
                      source: { s3: { uri: o.uri, etag: o.etag, size: o.size } },
                    }),
                  );
                } catch (err) {
                  if (signal.aborted) throw err;
                  merge(i, { ...emptyReport(), failed: [{ id, file: o.uri, reason: `cannot read the object: ${(err as Error).message}` }] });
                } finally {
                  await fs.rm(file, { force: true });
                }
                beat();
              },
              signal,
            );
          } finally {
            await fs.rm(tmp, { recursive: true, force: true });
          }
        } else {
          const where = input.source.path;
          let entries: ResolvedEntry[];
          try {
            if (input.source.kind === 'folder') {
              entries = await catalogFromFolder(where, [input.label]);
              const labelsOf = await catalogLabels(entries.map((e) => e.id));
              entries = entries.map((e) => ({ ...e, labels: [...new Set([...(labelsOf.get(e.id) ?? []), input.label])] }));
            } else {
              entries = await readCatalogFile(where);
            }
          } catch (err) {
            if (err instanceof CatalogError) throw err;
            throw new CatalogError(`cannot read ${source} on worker ${os.hostname()}: ${(err as Error).message}`);
          }
          listed = entries.length;
          // A folder's file whose content is already the video's, with the label: nothing to do (no ffprobe, no upload).
          const rows =
            input.source.kind === 'folder'
              ? await repos.videos.contentOf(
                  pool,
                  entries.map((e) => e.id),
                )
              : [];
          const shaOf = new Map(rows.map((r) => [r.id, r.sha256]));
          const labelled = await catalogLabels([...shaOf.keys()]);
          await forEachLimit(
            entries,
            INGEST_CONCURRENCY,
            async (e, i) => {
              const known = shaOf.get(e.id);
              if (known && (labelled.get(e.id) ?? []).includes(input.label) && (await sha256File(e.absPath).catch(() => undefined)) === known) {
                merge(i, { ...emptyReport(), unchanged: [e.id] });
                skippedUnchanged++;
              } else {
                merge(i, await ingestOne(e));
              }
              beat();
            },
            signal,
          );
        }

        const summary: IngestSourceSummary = {
          source,
          listed,
          inserted: report.inserted.length,
          updated: report.updated.length,
          unchanged: report.unchanged.length,
          uploaded: report.uploaded,
          skippedUnchanged,
          failed: report.failed.length,
          failures: report.failed.slice(0, MAX_REPORTED_FAILURES),
        };
        if (report.failed.length) logger.warn({ source, failed: report.failed.length, first: report.failed[0] }, 'ingest: some files failed');
        return { summary, extra: { ids: ids.filter((id): id is string => id !== undefined), failures: report.failed } };
      });
    },

    /**
     * The backfill's selection (its `select` step, `runs/<backfill>/select/`): every
     * catalog video of the label ({@link selectCatalogVideos}), narrowed by `since`, by
     * `videoIds`, or to what the `ingest` step ingested, in video id order; cut into
     * pages of `pageSize`. Each page becomes a run of its own (a `runs` row with
     * `parent_id` = the backfill, kind `backfill-page`) with a search manifest listing its
     * videos, which the extract (`finishExtract`) and embed steps read. Idempotent:
     * rows first, then page manifests, then the select manifest.
     */
    async selectBackfill(input: {
      workflowId: string;
      label: string;
      since?: string;
      videoIds?: string[];
      fromIngest: boolean;
      pageSize: number;
    }): Promise<StepResult<BackfillSelectSummary>> {
      return runStep(deps, input.workflowId, 'select', async () => {
        const ctx = Context.current();
        const onlyIds = input.fromIngest ? (await readStepManifest<IngestManifest>(store, input.workflowId, 'ingest')).ids : undefined;
        const sel = await selectCatalogVideos(pool, { label: input.label, since: input.since, videoIds: input.videoIds, onlyIds });
        const pages = Math.ceil(sel.hits.length / input.pageSize);
        const pageIds = Array.from({ length: pages }, (_, p) => backfillPageRunId(input.workflowId, p));
        await repos.runs.recordBackfillPages(pool, input.workflowId, sel.label, pageIds);
        for (let p = 0; p < pages; p++) {
          const hits = sel.hits.slice(p * input.pageSize, (p + 1) * input.pageSize);
          await runStep(deps, pageIds[p]!, 'search', async () => {
            const summary: SearchSummary = {
              label: sel.label,
              positives: hits.length,
              negatives: 0,
              videoIds: hits.map((h) => h.videoId),
              catalogDigest: catalogDigest(hits),
            };
            return { summary, extra: { terms: [], hits, backfill: input.workflowId, page: p } };
          });
          ctx.heartbeat({ page: p + 1, pages });
        }
        const summary: BackfillSelectSummary = {
          label: sel.label,
          total: sel.hits.length,
          pages,
          pageSize: input.pageSize,
          digest: catalogDigest(sel.hits),
          missing: sel.missing.slice(0, MAX_REPORTED_FAILURES),
          notOfLabel: sel.notOfLabel.slice(0, MAX_REPORTED_FAILURES),
          missingCount: sel.missing.length,
          notOfLabelCount: sel.notOfLabel.length,
        };
        return { summary, extra: { videoIds: sel.hits.map((h) => h.videoId), missing: sel.missing, notOfLabel: sel.notOfLabel } };
      });
    },
  };
}
