/**
 * Run identity on the client: what a run would read, digested now, so that its workflow
 * id changes when that changed (new videos of the label) and stays when it did not
 * (`contracts/ids.ts`). The CLI reads the catalog for it (Postgres, and the source's
 * listing for a backfill that ingests first); `--id` skips it.
 */
import type { Pool } from 'pg';
import { selectCatalogVideos, sourceDigest, type Selection } from '../activities/catalog';
import { catalogDigest, CatalogError, type BackfillInput, type NewCategoryInput } from '../contracts';
import { searchCatalog } from '../domain/catalog-search';
import type { Config } from '../lib/config';
import { dataClients, UsageError, type DataClients } from './common';

/** Clients the generation needs; `close()` when done. */
export type CatalogClients = DataClients;

/**
 * Connect to the catalog (Postgres, S3) and check Postgres answers ({@link dataClients}).
 *
 * @throws ServiceUnavailableError (exit code 3) naming the address and the way around it (`--id`).
 */
export async function catalogClients(config: Config): Promise<CatalogClients> {
  return dataClients(config, { max: 2, why: ': the CLI reads the catalog to name the run', instead: ', or pass --id to name the run yourself' });
}

/**
 * The catalog generation of a new-category request: the {@link catalogDigest} of the
 * videos its search step would read now (same search, same caps and seed).
 */
export async function newCategoryGeneration(pool: Pool, input: NewCategoryInput): Promise<string> {
  const { hits } = await searchCatalog(pool, input);
  return catalogDigest(hits);
}

/**
 * The generation of a backfill request: the digest of the selected videos, or, when it
 * ingests a source first, of the source's listing.
 *
 * @throws UsageError (nothing started) when requested videos are not in the catalog or do
 *   not carry the label, or the source cannot be read; Error when nothing is selected.
 */
export async function backfillGeneration(
  clients: CatalogClients,
  input: BackfillInput,
): Promise<{ generation: string; videos: number; selection?: Selection }> {
  if (input.ingest) {
    try {
      const { digest, listed } = await sourceDigest(clients.store, input.ingest);
      if (listed === 0) throw new UsageError(`no video file in ${input.ingest.kind === 'prefix' ? input.ingest.uri : input.ingest.path}`);
      return { generation: digest, videos: listed };
    } catch (err) {
      if (err instanceof CatalogError) throw new UsageError(err.message);
      throw err;
    }
  }
  const selection = await selectCatalogVideos(clients.pool, { label: input.label, since: input.since, videoIds: input.videoIds });
  if (selection.missing.length)
    throw new UsageError(
      `not in the catalog: ${selection.missing.slice(0, 10).join(', ')}${selection.missing.length > 10 ? ` and ${selection.missing.length - 10} more` : ''}`,
    );
  if (selection.notOfLabel.length) {
    throw new UsageError(`videos that do not carry the label "${selection.label}": ${selection.notOfLabel.slice(0, 10).join(', ')}`);
  }
  if (selection.hits.length === 0) {
    throw new Error(
      `no catalog video of label "${selection.label}"${input.since ? ` ingested since ${input.since}` : ''}: nothing to backfill (ingest some with \`reelset ingest\`, or --prefix / --folder / --catalog)`,
    );
  }
  return { generation: catalogDigest(selection.hits), videos: selection.hits.length, selection };
}
