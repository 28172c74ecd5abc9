/**
 * `videos`: the catalog, one row per distinct file content (sha256), with its metadata and
 * the probe cached by the first extraction. The only place its SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool
 * or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** What the catalog ingest writes of a video. */
export interface VideoUpsert {
  id: string;
  sha256: string;
  /** `videos/<sha256>/<file name>`. */
  s3Key: string;
  fileName: string;
  title: string;
  bytes: number;
  durationS: number | null;
  width: number | null;
  height: number | null;
  codec: string | null;
  /** ffprobe's `avg_frame_rate`, e.g. `30000/1001`. */
  frameRate: string | null;
  hasAudio: boolean | null;
  /** Where the file came from (`{s3: {uri, etag, size}}` for an S3 prefix), stored as JSON. */
  source: unknown;
}

/** A catalog video with its labels (sorted), as the search reads it. */
export interface CatalogVideoRow {
  id: string;
  sha256: string;
  s3_key: string;
  file_name: string;
  title: string;
  labels: string[];
}

/**
 * Insert or update a video; an unchanged row is not written (`updated_at` stays).
 *
 * @returns true when a row was inserted or changed.
 * @throws the unique violation on `sha256` when another id has the same content (check with {@link idWithContent} first).
 */
export async function upsert(db: Queryable, v: VideoUpsert): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO videos (id, sha256, s3_key, file_name, title, bytes, duration_s, width, height, codec, frame_rate, has_audio, source)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
     ON CONFLICT (id) DO UPDATE SET sha256 = EXCLUDED.sha256, s3_key = EXCLUDED.s3_key, file_name = EXCLUDED.file_name,
       title = EXCLUDED.title, bytes = EXCLUDED.bytes, duration_s = EXCLUDED.duration_s, width = EXCLUDED.width,
       height = EXCLUDED.height, codec = EXCLUDED.codec, frame_rate = EXCLUDED.frame_rate, has_audio = EXCLUDED.has_audio,
       source = EXCLUDED.source, updated_at = now()
     WHERE (videos.sha256, videos.s3_key, videos.file_name, videos.title, videos.bytes, videos.duration_s, videos.width,
            videos.height, videos.codec, videos.frame_rate, videos.has_audio, videos.source)
       IS DISTINCT FROM (EXCLUDED.sha256, EXCLUDED.s3_key, EXCLUDED.file_name, EXCLUDED.title, EXCLUDED.bytes,
            EXCLUDED.duration_s, EXCLUDED.width, EXCLUDED.height, EXCLUDED.codec, EXCLUDED.frame_rate,
            EXCLUDED.has_audio, EXCLUDED.source)`,
    [v.id, v.sha256, v.s3Key, v.fileName, v.title, v.bytes, v.durationS, v.width, v.height, v.codec, v.frameRate, v.hasAudio, JSON.stringify(v.source ?? {})],
  );
  return (res.rowCount ?? 0) > 0;
}

/** The content hash of a video; undefined when the id is not in the catalog. */
export async function sha256Of(db: Queryable, id: string): Promise<string | undefined> {
  const r = await db.query<{ sha256: string }>('SELECT sha256 FROM videos WHERE id = $1', [id]);
  return r.rows[0]?.sha256;
}

/** The id of another video (not `exceptId`) with this content, if any. */
export async function idWithContent(db: Queryable, sha256: string, exceptId: string): Promise<string | undefined> {
  const r = await db.query<{ id: string }>('SELECT id FROM videos WHERE sha256 = $1 AND id <> $2', [sha256, exceptId]);
  return r.rows[0]?.id;
}

/** What an extraction needs of a video: content hash, S3 key, file name and the cached probe (`probe` as stored; null: not probed yet). */
export async function forExtraction<P>(db: Queryable, id: string): Promise<{ sha256: string; s3_key: string; file_name: string; probe: P | null } | undefined> {
  const r = await db.query<{ sha256: string; s3_key: string; file_name: string; probe: P | null }>(
    'SELECT sha256, s3_key, file_name, probe FROM videos WHERE id = $1',
    [id],
  );
  return r.rows[0];
}

/** Cache a content's probe (a pure function of the bytes) on every video with that sha256. */
export async function saveProbe(db: Queryable, sha256: string, probe: unknown): Promise<void> {
  await db.query('UPDATE videos SET probe = $2 WHERE sha256 = $1', [sha256, JSON.stringify(probe)]);
}

/** Ids of the videos whose cached probe is an error (content known not to decode). */
export async function undecodableIds(db: Queryable): Promise<string[]> {
  const r = await db.query<{ id: string }>(`SELECT id FROM videos WHERE probe ? 'error'`);
  return r.rows.map((x) => x.id);
}

/** Every catalog video with its labels (empty when none), ordered by id. */
export async function catalogWithLabels(db: Queryable): Promise<CatalogVideoRow[]> {
  const r = await db.query<CatalogVideoRow>(
    `SELECT v.id, v.sha256, v.s3_key, v.file_name, v.title,
            coalesce(array_agg(vl.label ORDER BY vl.label) FILTER (WHERE vl.label IS NOT NULL), '{}') AS labels
       FROM videos v LEFT JOIN video_labels vl ON vl.video_id = v.id
      GROUP BY v.id ORDER BY v.id`,
  );
  return r.rows;
}

/** Ids of the videos ingested at or after `since` (an ISO 8601 timestamp). */
export async function idsCreatedSince(db: Queryable, since: string): Promise<string[]> {
  const r = await db.query<{ id: string }>('SELECT id FROM videos WHERE created_at >= $1::timestamptz', [since]);
  return r.rows.map((x) => x.id);
}

/** Those of `ids` that are in the catalog (no order). */
export async function existingIds(db: Queryable, ids: readonly string[]): Promise<string[]> {
  const r = await db.query<{ id: string }>('SELECT id FROM videos WHERE id = ANY($1::text[])', [ids]);
  return r.rows.map((x) => x.id);
}

/** Content hash and S3 key of those of `ids` in the catalog (no order). */
export async function contentOf(db: Queryable, ids: readonly string[]): Promise<Array<{ id: string; sha256: string; s3_key: string }>> {
  const r = await db.query<{ id: string; sha256: string; s3_key: string }>('SELECT id, sha256, s3_key FROM videos WHERE id = ANY($1::text[])', [ids]);
  return r.rows;
}

/**
 * Duration (seconds) and size (bytes) of those of `ids` in the catalog, in the order of
 * `ids` (an id not in the catalog comes back with nulls): what extraction batching reads.
 */
export async function sizesOf(db: Queryable, ids: readonly string[]): Promise<Array<{ videoId: string; durationS: number | null; bytes: number | null }>> {
  const r = await db.query<{ id: string; duration_s: number | null; bytes: string | null }>(
    'SELECT id, duration_s, bytes FROM videos WHERE id = ANY($1::text[])',
    [ids],
  );
  const by = new Map(r.rows.map((x) => [x.id, x]));
  return ids.map((id) => {
    const v = by.get(id);
    return { videoId: id, durationS: v?.duration_s ?? null, bytes: v?.bytes != null ? Number(v.bytes) : null };
  });
}

/**
 * Videos ingested from S3 objects, by object URI (`source.s3.uri`), with the ETag and size
 * (`bytes`, a string: bigint) they were ingested with.
 */
export async function fromS3Objects(db: Queryable, uris: readonly string[]): Promise<Array<{ id: string; uri: string; etag: string; bytes: string }>> {
  const r = await db.query<{ id: string; uri: string; etag: string; bytes: string }>(
    `SELECT id, source->'s3'->>'uri' AS uri, source->'s3'->>'etag' AS etag, bytes FROM videos WHERE source->'s3'->>'uri' = ANY($1::text[])`,
    [uris],
  );
  return r.rows;
}

/**
 * Ids of the catalog videos carrying `label` or one of its descendants (every video when
 * `label` is null), ordered by id, at most `limit`.
 */
export async function idsOfLabelTree(db: Queryable, label: string | null, limit: number): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `WITH RECURSIVE d(name, depth) AS (SELECT $1::text, 0 WHERE $1::text IS NOT NULL
       UNION SELECT l.name, d.depth + 1 FROM labels l JOIN d ON l.parent = d.name WHERE d.depth < 32)
     SELECT v.id FROM videos v WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM video_labels vl WHERE vl.video_id = v.id AND vl.label IN (SELECT name FROM d))
     ORDER BY v.id LIMIT $2`,
    [label, limit],
  );
  return r.rows.map((x) => x.id);
}

/** Ids of the videos whose id matches a POSIX regular expression (benches sweep what they left). */
export async function idsMatching(db: Queryable, pattern: string): Promise<string[]> {
  const r = await db.query<{ id: string }>('SELECT id FROM videos WHERE id ~ $1', [pattern]);
  return r.rows.map((x) => x.id);
}

/** A placeholder video with no file behind it (`videos/x`, one byte), for benches that need a row to hang frames on. */
export async function insertPlaceholder(db: Queryable, id: string, sha256: string): Promise<void> {
  await db.query(`INSERT INTO videos (id, sha256, s3_key, file_name, bytes) VALUES ($1, $2, 'videos/x', 'x.mp4', 1)`, [id, sha256]);
}

/**
 * Delete videos: their frames, catalog labels and `label_videos` rows go with them (ON
 * DELETE CASCADE).
 *
 * @throws the foreign-key violation when a video is in an evaluation set (`eval_set_videos`: RESTRICT).
 */
export async function remove(db: Queryable, ids: readonly string[]): Promise<void> {
  await db.query('DELETE FROM videos WHERE id = ANY($1::text[])', [ids]);
}
