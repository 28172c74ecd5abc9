/**
 * `frames`: the extracted frames, one row per (video, extraction parameters, sampled
 * index), keyed by their content-derived S3 key. The only place its SQL is written
 * (docs/architecture.md, "Postgres: one owner per table"). Every function runs on a pool
 * or on a client inside the caller's transaction.
 */
import type { FrameRecord } from '../../contracts';
import type { Queryable } from '../db';

/**
 * Record a video's frames of one extraction in one statement (atomic); rows already there
 * (a retried attempt's) are left as they are.
 *
 * @param paramsHash the extraction parameters' hash (`extractionParamsHash`).
 */
export async function insertMany(db: Queryable, videoId: string, paramsHash: string, fr: readonly FrameRecord[]): Promise<void> {
  await db.query(
    `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
     SELECT k, $2, $3, i, t, w, h, b, s, sh, br
       FROM unnest($1::text[], $4::int[], $5::float8[], $6::int[], $7::int[], $8::int[], $9::text[], $10::float8[], $11::float8[])
         AS r(k, i, t, w, h, b, s, sh, br)
     ON CONFLICT (s3_key) DO NOTHING`,
    [
      fr.map((f) => f.key),
      videoId,
      paramsHash,
      fr.map((f) => f.index),
      fr.map((f) => f.timestampS),
      fr.map((f) => f.width),
      fr.map((f) => f.height),
      fr.map((f) => f.bytes),
      fr.map((f) => f.sha256),
      fr.map((f) => f.sharpness),
      fr.map((f) => f.brightness),
    ],
  );
}

/** The frames of one extraction of a video sampled before index `beforeIndex`, by index (what a resumed extraction keeps). */
export async function sampledBefore(db: Queryable, videoId: string, paramsHash: string, beforeIndex: number): Promise<FrameRecord[]> {
  const res = await db.query<{
    s3_key: string;
    frame_index: number;
    timestamp_s: number;
    width: number;
    height: number;
    bytes: number;
    sha256: string;
    sharpness: number;
    brightness: number;
  }>(
    `SELECT s3_key, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness
       FROM frames WHERE video_id = $1 AND params_hash = $2 AND frame_index < $3 ORDER BY frame_index`,
    [videoId, paramsHash, beforeIndex],
  );
  return res.rows.map((r) => ({
    key: r.s3_key,
    index: r.frame_index,
    timestampS: r.timestamp_s,
    width: r.width,
    height: r.height,
    bytes: r.bytes,
    sha256: r.sha256,
    sharpness: r.sharpness,
    brightness: r.brightness,
  }));
}

/** How many frames the videos have from the extraction with `paramsHash`. */
export async function countOfExtraction(db: Queryable, videoIds: readonly string[], paramsHash: string): Promise<number> {
  const res = await db.query<{ n: string }>('SELECT count(*) AS n FROM frames WHERE video_id = ANY($1::text[]) AND params_hash = $2', [videoIds, paramsHash]);
  return Number(res.rows[0]!.n);
}

/** Timestamps (seconds from the start of the video) of those of `keys` that have a row, by key. */
export async function timestampsOf(db: Queryable, keys: readonly string[]): Promise<Map<string, number>> {
  const ts = await db.query<{ s3_key: string; timestamp_s: number }>('SELECT s3_key, timestamp_s FROM frames WHERE s3_key = ANY($1::text[])', [keys]);
  return new Map(ts.rows.map((r) => [r.s3_key, r.timestamp_s]));
}

/** Every video with extracted frames and how many (all extractions together), by video id. */
export async function countsByVideo(db: Queryable): Promise<Array<{ videoId: string; frames: number }>> {
  const r = await db.query<{ video_id: string; n: string }>('SELECT video_id, count(*) AS n FROM frames GROUP BY video_id ORDER BY video_id');
  return r.rows.map((x) => ({ videoId: x.video_id, frames: Number(x.n) }));
}

/** Keys of the frames of a video's most recent extraction (by the time its first row was written), in time order. */
export async function keysOfLatestExtraction(db: Queryable, videoId: string): Promise<string[]> {
  const fr = await db.query<{ s3_key: string }>(
    `SELECT s3_key FROM frames WHERE video_id = $1 AND params_hash = (SELECT params_hash FROM frames WHERE video_id = $1 ORDER BY created_at DESC, params_hash LIMIT 1)
     ORDER BY timestamp_s, frame_index`,
    [videoId],
  );
  return fr.rows.map((r) => r.s3_key);
}

/** Keys of every frame of the videos (any extraction). */
export async function keysOfVideos(db: Queryable, videoIds: readonly string[]): Promise<string[]> {
  const r = await db.query<{ s3_key: string }>('SELECT s3_key FROM frames WHERE video_id = ANY($1::text[])', [videoIds]);
  return r.rows.map((x) => x.s3_key);
}

/** Delete the rows of one extraction of a video (a bench that extracts again from nothing). */
export async function removeExtraction(db: Queryable, videoId: string, paramsHash: string): Promise<void> {
  await db.query('DELETE FROM frames WHERE video_id = $1 AND params_hash = $2', [videoId, paramsHash]);
}

/**
 * Rows for frames that were never extracted (benches: 1x1, one byte, `sha256` 'x'), under
 * params hash `0123456789abcdef`: the n-th key (from 1) gets index `firstIndex + n` and
 * timestamp n seconds.
 */
export async function insertSynthetic(db: Queryable, videoId: string, keys: readonly string[], firstIndex: number): Promise<void> {
  await db.query(
    `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
     SELECT k, $2, '0123456789abcdef', $3 + i, i, 1, 1, 1, 'x', 1, 1 FROM unnest($1::text[]) WITH ORDINALITY AS t(k, i)`,
    [keys, videoId, firstIndex],
  );
}
