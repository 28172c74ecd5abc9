/**
 * The shared catalogs' frames for the model benchmarks (`bench/quality.ts`,
 * `bench/scope.ts`): every video extracted as the pipeline does with the new-category
 * defaults (fps 1, at most 60 a video, short side 256, JPEG, the quality filters), cached
 * on disk by the extraction parameters' hash.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ResolvedEntry } from '../activities/catalog';
import { extractFrames, extractionParamsHash, probeVideo } from '../activities/frames';
import { ExtractOptions } from '../contracts';

/** One extracted frame: its video and its JPEG bytes. */
export interface Frame {
  videoId: string;
  bytes: Buffer;
}

/** A video's labels and their taxonomy ancestors (`parent`: label -> its parent). */
export function withAncestors(labels: string[], parent: Map<string, string>): Set<string> {
  const out = new Set<string>();
  for (let l of labels) {
    out.add(l);
    for (let d = 0; d < 32 && parent.has(l); d++) out.add((l = parent.get(l)!));
  }
  return out;
}

/**
 * Frames of every catalog entry, in catalog order then frame order, extracted once and
 * cached under `<cacheDir>/frames-<params hash>/<video id>.json`. A video that cannot be
 * extracted is reported on stdout and has no frames.
 */
export async function corpusFrames(cacheDir: string, entries: ResolvedEntry[]): Promise<Frame[]> {
  const opts = ExtractOptions.parse({});
  const dir = path.join(cacheDir, `frames-${extractionParamsHash(opts).slice(0, 12)}`);
  mkdirSync(dir, { recursive: true });
  const frames: Frame[] = [];
  for (const e of entries) {
    const file = path.join(dir, `${e.id}.json`);
    if (!existsSync(file)) {
      const got: Array<{ index: number; b64: string }> = [];
      try {
        const probe = await probeVideo(e.absPath);
        await extractFrames(e.absPath, e.sha256 ?? '0'.repeat(64), probe, opts, {
          has: () => false,
          put: async (f, bytes) => void got.push({ index: f.index, b64: bytes.toString('base64') }),
        });
      } catch (err) {
        console.log(`  ${e.id}: no frames (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
      }
      writeFileSync(file, JSON.stringify(got.sort((a, b) => a.index - b.index).map((g) => g.b64)));
    }
    for (const b64 of JSON.parse(readFileSync(file, 'utf8')) as string[]) frames.push({ videoId: e.id, bytes: Buffer.from(b64, 'base64') });
  }
  return frames;
}
