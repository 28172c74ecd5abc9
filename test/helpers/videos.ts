import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { videoKey } from '../../contracts';
import { sha256File } from '../../lib/hash';
import type { Services } from './services';

/**
 * Encode a test video from a lavfi source graph (H.264, yuv420p, ultrafast unless
 * `codec` says otherwise).
 *
 * @returns the file's path.
 */
export function lavfiVideo(file: string, source: string, codec: string[] = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p']): string {
  execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-f', 'lavfi', '-i', source, ...codec, file], { stdio: 'pipe' });
  return file;
}

/**
 * Put a local video in the catalog the way ingest does (content-addressed object, a
 * `videos` row) without labels.
 *
 * @returns the video's sha256 and a function that removes the row, its frames and the object.
 */
export async function registerVideo(svc: Pick<Services, 'pool' | 'store'>, file: string, id: string): Promise<{ sha256: string; remove: () => Promise<void> }> {
  const sha256 = await sha256File(file);
  const key = videoKey(sha256, path.basename(file));
  const { size } = await fs.stat(file);
  await svc.store.put(key, await fs.readFile(file), 'video/mp4');
  await svc.pool.query(
    `INSERT INTO videos (id, sha256, s3_key, file_name, bytes) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO UPDATE SET sha256 = EXCLUDED.sha256, s3_key = EXCLUDED.s3_key, file_name = EXCLUDED.file_name, bytes = EXCLUDED.bytes`,
    [id, sha256, key, path.basename(file), size],
  );
  return {
    sha256,
    remove: async () => {
      await svc.pool.query('DELETE FROM frames WHERE video_id = $1', [id]);
      await svc.pool.query('DELETE FROM videos WHERE id = $1', [id]);
      const keys = [key, ...(await svc.store.list(`frames/${sha256}/`))];
      await svc.store.deleteMany(keys);
    },
  };
}
