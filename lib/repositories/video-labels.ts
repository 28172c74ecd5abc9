/**
 * `video_labels`: the labels a video carries in the catalog (source `catalog`). The only
 * place its SQL is written (docs/architecture.md, "Postgres: one owner per table"). Every
 * function runs on a pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/**
 * Make a video's catalog labels exactly `labels`: the others are removed, the missing ones
 * added. The labels must exist (`labels.ensure`). Two statements: run it in a transaction.
 *
 * @returns true when a row was removed or added.
 */
export async function replaceCatalogLabels(db: Queryable, videoId: string, labels: readonly string[]): Promise<boolean> {
  const del = await db.query(`DELETE FROM video_labels WHERE video_id = $1 AND source = 'catalog' AND NOT (label = ANY($2))`, [videoId, labels]);
  const ins = await db.query(`INSERT INTO video_labels (video_id, label) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, [videoId, labels]);
  return (del.rowCount ?? 0) > 0 || (ins.rowCount ?? 0) > 0;
}

/** Add a catalog label to a video (the label must exist). @returns true when it was not there. */
export async function add(db: Queryable, videoId: string, label: string): Promise<boolean> {
  const r = await db.query(`INSERT INTO video_labels (video_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [videoId, label]);
  return (r.rowCount ?? 0) > 0;
}

/** The catalog labels (sorted) of those of `videoIds` that have some, by video id. */
export async function catalogLabelsOf(db: Queryable, videoIds: readonly string[]): Promise<Map<string, string[]>> {
  const res = await db.query<{ video_id: string; labels: string[] }>(
    `SELECT video_id, array_agg(label ORDER BY label) AS labels FROM video_labels WHERE video_id = ANY($1::text[]) AND source = 'catalog' GROUP BY video_id`,
    [videoIds],
  );
  return new Map(res.rows.map((r) => [r.video_id, r.labels]));
}

/** Those of `videoIds` that carry `label` or one of its descendants (at most 32 levels down), any source. */
export async function carryingLabelTree(db: Queryable, label: string, videoIds: readonly string[]): Promise<Set<string>> {
  const r = await db.query<{ video_id: string }>(
    `WITH RECURSIVE d(name, depth) AS (SELECT $1::text, 0 UNION SELECT l.name, d.depth + 1 FROM labels l JOIN d ON l.parent = d.name WHERE d.depth < 32)
     SELECT DISTINCT video_id FROM video_labels WHERE video_id = ANY($2) AND label IN (SELECT name FROM d)`,
    [label, videoIds],
  );
  return new Set(r.rows.map((x) => x.video_id));
}
