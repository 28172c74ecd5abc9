/**
 * A tiny catalog for end-to-end tests that need a whole run but not real footage: short
 * lavfi-made videos (3 s, H.264), registered under labels of the test's own, removed
 * afterwards with their frames. Needs only ffmpeg, the S3 server and Postgres.
 */
import * as path from 'node:path';
import type { Services } from './services';
import { lavfiVideo, registerVideo } from './videos';

const H264 = ['-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];

/** lavfi sources that look nothing alike (no near-duplicates across them). */
export const TINY_SOURCES = {
  positives: ['mandelbrot=size=320x240:rate=8', 'cellauto=size=320x240:rate=8:rule=110', 'life=size=320x240:rate=8:mold=10:ratio=0.5'],
  extraPositive: 'gradients=size=320x240:rate=8:speed=0.05',
  negatives: ['smptehdbars=size=320x240:rate=8', 'testsrc2=size=320x240:rate=8'],
};

/** A catalog a test made; `remove()` deletes its videos, frames, labels. */
export interface TinyCatalog {
  /** Add one more video of a label (the labels must be the catalog's). */
  add(id: string, source: string, label: string): Promise<void>;
  remove(): Promise<void>;
}

/**
 * Register `label` (positives) and `<label>-neg` (negatives) with the sources above.
 *
 * @param dir a temporary folder for the video files.
 */
export async function tinyCatalog(
  svc: Pick<Services, 'pool' | 'store'>,
  label: string,
  dir: string,
  counts = { positives: 3, negatives: 2 },
): Promise<TinyCatalog> {
  const removers: Array<() => Promise<void>> = [];
  const neg = `${label}-neg`;
  await svc.pool.query('INSERT INTO labels (name) VALUES ($1), ($2) ON CONFLICT DO NOTHING', [label, neg]);
  const add = async (id: string, source: string, l: string) => {
    const file = lavfiVideo(path.join(dir, `${id}.mp4`), source, H264);
    const v = await registerVideo(svc, file, id);
    removers.push(v.remove);
    await svc.pool.query('INSERT INTO video_labels (video_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, l]);
  };
  for (let i = 0; i < counts.positives; i++) await add(`${label}-p${i + 1}`, TINY_SOURCES.positives[i % 3]!, label);
  for (let i = 0; i < counts.negatives; i++) await add(`${label}-n${i + 1}`, TINY_SOURCES.negatives[i % 2]!, neg);
  return {
    add,
    remove: async () => {
      for (const r of removers) await r().catch(() => undefined);
      await svc.pool.query('DELETE FROM labels WHERE name = ANY($1::text[])', [[label, neg]]).catch(() => undefined);
    },
  };
}
