/**
 * Sources of new videos a backfill ingests first: an S3 prefix, a folder, a catalog
 * file. Listing, the ids given to S3 objects, and the digest of a source's listing that
 * the CLI puts in a backfill's identity (so new files under the prefix make a new run).
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CatalogError, keySegment, shortHash, stableJson, type IngestSource } from '../../contracts';
import { sha256File } from '../../lib/hash';
import type { ObjectStore } from '../../lib/s3';
import { catalogFromFolder, readCatalogFile, VIDEO_EXTENSIONS } from './catalog-file';

/** One video object under an S3 prefix. */
export interface PrefixObject {
  /** Key in its bucket. */
  key: string;
  /** `s3://bucket/key`. */
  uri: string;
  size: number;
  /** The object's ETag without quotes (changes when the object is overwritten). */
  etag: string;
  /** Catalog id given to it ({@link prefixVideoId}). */
  id: string;
  /** Last path segment of the key. */
  fileName: string;
}

/**
 * Split `s3://bucket/prefix` into bucket and prefix (`''` for the whole bucket).
 *
 * @throws CatalogError when the URI is not of that form.
 */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
  if (!m) throw new CatalogError(`not an s3://bucket/prefix URI: ${JSON.stringify(uri)}`);
  return { bucket: m[1]!, prefix: m[2] ?? '' };
}

/**
 * Catalog id of an object: its bucket and key without the extension, e.g.
 * `incoming/new/clip 1.mp4` becomes `incoming_new_clip_1-<hash>`; separators and other
 * characters outside `[A-Za-z0-9_.-]` are replaced and a hash of the original appended
 * whenever something was replaced ({@link keySegment}), so two objects (of any bucket)
 * never share an id, and the same object always gets the same one.
 */
export function prefixVideoId(bucket: string, key: string): string {
  const stem = key.slice(0, key.length - path.extname(key).length);
  const id = keySegment(`${bucket}/${stem}`);
  return /^[A-Za-z0-9]/.test(id) ? id : `v${id}`;
}

/**
 * Every video object under an S3 prefix (all pages), in key order. Uses the store's
 * client (same endpoint and credentials), on the URI's bucket.
 *
 * @throws CatalogError naming the URI when the bucket does not exist or cannot be listed.
 */
export async function listPrefix(store: ObjectStore, uri: string): Promise<PrefixObject[]> {
  const { bucket, prefix } = parseS3Uri(uri);
  const out: PrefixObject[] = [];
  let token: string | undefined;
  do {
    let res;
    try {
      res = await store.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    } catch (err) {
      const e = err as { name?: string; message?: string };
      if (e.name === 'NoSuchBucket' || e.name === 'AccessDenied' || e.name === 'NotFound') {
        throw new CatalogError(`cannot list ${uri}: ${e.name}: ${e.message ?? ''}`.trim());
      }
      throw err;
    }
    for (const o of res.Contents ?? []) {
      if (!o.Key || o.Key.endsWith('/') || !VIDEO_EXTENSIONS.has(path.extname(o.Key).toLowerCase())) continue;
      out.push({
        key: o.Key,
        uri: `s3://${bucket}/${o.Key}`,
        size: o.Size ?? 0,
        etag: (o.ETag ?? '').replace(/"/g, ''),
        id: prefixVideoId(bucket, o.Key),
        fileName: path.basename(o.Key),
      });
    }
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A source for people: the URI, or the path. */
export function describeSource(source: IngestSource): string {
  return source.kind === 'prefix' ? source.uri : `${source.kind} ${source.path}`;
}

/**
 * Digest of what a source holds now (11 base-36 characters): S3 prefix — every video
 * object's key, size and ETag; folder — every video file's name, size and modification
 * time; catalog file — its sha256 and each entry's file size and modification time.
 * Cheap (a listing or `stat`s, no file read but the catalog's), and different whenever
 * a file is added, removed or replaced.
 *
 * @throws CatalogError naming the source when it cannot be read.
 */
export async function sourceDigest(store: ObjectStore, source: IngestSource): Promise<{ digest: string; listed: number }> {
  const statRow = async (file: string) => {
    const s = await fs.stat(file).catch(() => undefined);
    return [file, s?.size ?? -1, s ? Math.round(s.mtimeMs) : -1];
  };
  let rows: unknown[];
  try {
    if (source.kind === 'prefix') {
      rows = (await listPrefix(store, source.uri)).map((o) => [o.key, o.size, o.etag]);
    } else if (source.kind === 'folder') {
      const entries = await catalogFromFolder(source.path);
      rows = await Promise.all(entries.map((e) => statRow(e.absPath)));
    } else {
      const entries = await readCatalogFile(source.path);
      rows = [await sha256File(source.path), ...(await Promise.all(entries.map((e) => statRow(e.absPath))))];
      return { digest: shortHash(stableJson(rows)), listed: entries.length };
    }
  } catch (err) {
    if (err instanceof CatalogError) throw err;
    throw new CatalogError(`cannot read ${describeSource(source)}: ${(err as Error).message}`);
  }
  return { digest: shortHash(stableJson(rows)), listed: rows.length };
}
