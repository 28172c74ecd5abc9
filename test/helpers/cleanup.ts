import type { Services } from './services';

/**
 * Remove catalog videos a test made, so later tests (and a later `npm test` on the same
 * data) see the catalog as it was: their objects (`videos/<sha256>`, everything under
 * `frames/<sha256>/`) and rows (videos; frames, labels and frame labels cascade).
 * Runs and their manifests stay (other rows refer to them).
 *
 * @param idLike a SQL LIKE pattern of the ids, e.g. `bf<suffix>-%`.
 * @returns how many videos were removed.
 */
export async function removeVideosLike(svc: Pick<Services, 'pool' | 'store'>, idLike: string): Promise<number> {
  const rows = await svc.pool.query<{ id: string; sha256: string; s3_key: string }>('SELECT id, sha256, s3_key FROM videos WHERE id LIKE $1', [idLike]);
  const keys: string[] = [];
  for (const r of rows.rows) keys.push(r.s3_key, ...(await svc.store.list(`frames/${r.sha256}/`)));
  await svc.store.deleteMany(keys);
  await svc.pool.query('DELETE FROM videos WHERE id = ANY($1::text[])', [rows.rows.map((r) => r.id)]);
  return rows.rowCount ?? 0;
}
