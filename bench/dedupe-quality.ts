/**
 * Near-duplicate quality on the shared corpus (`../shared/data`): do re-uploaded copies of
 * a frame (JPEG quality 50, half size, brightness +10% / -10%, a 5% crop) land within the
 * threshold of their original, and do frames of different videos stay apart? Measured for
 * the MobileNetV2 embeddings (cosine) and for a perceptual-hash baseline (dHash, 64 bits,
 * similarity 1 - Hamming / 64; Krawetz 2013, "Kinda like that"), side by side.
 *
 * Pairs counted:
 * - positives: (original, transformed copy of it), 5 per original;
 * - negatives: every pair of images (originals and copies) from different videos, except
 *   the videos listed in {@link SAME_SCENE_VIDEOS} (the same scene filmed twice), whose
 *   pairs are reported apart;
 * - pairs of different frames of the same video are not counted: consecutive frames of a
 *   shot are genuinely near-duplicates, and no ground truth separates them.
 * precision = TP / (TP + FP) over these pairs, recall = TP / positives.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { FeatureExtractor } from '../domain/backbone/model';
import { corpusPath } from '../infra/corpus';

/** The corpus directory: `../shared/data` from the project root, or its copy fetched by `infra/corpus.ts`. */
export const CORPUS = corpusPath('shared');

/** Videos of the corpus that show the same scene (the corpus's own README, ../shared/data/README.md, outside this repository, says so: the same lab set-up, puck and table, filmed twice; see docs/benchmarks.md#near-duplicate-quality). */
export const SAME_SCENE_VIDEOS: ReadonlyArray<readonly [string, string]> = [['Principe_inertie', 'Force_constante']];

/** The re-upload transforms. */
export const TRANSFORMS: Record<string, (img: Buffer) => Promise<Buffer>> = {
  jpeg50: (img) => sharp(img).jpeg({ quality: 50 }).toBuffer(),
  half: async (img) => {
    const m = await sharp(img).metadata();
    return sharp(img)
      .resize(Math.round(m.width! / 2), Math.round(m.height! / 2))
      .png()
      .toBuffer();
  },
  brighter10: (img) => sharp(img).modulate({ brightness: 1.1 }).png().toBuffer(),
  darker10: (img) => sharp(img).modulate({ brightness: 0.9 }).png().toBuffer(),
  crop5: async (img) => {
    const m = await sharp(img).metadata();
    const dx = Math.round(m.width! * 0.025);
    const dy = Math.round(m.height! * 0.025);
    return sharp(img)
      .extract({ left: dx, top: dy, width: m.width! - 2 * dx, height: m.height! - 2 * dy })
      .png()
      .toBuffer();
  },
};

/** One image of the evaluation set. */
export interface QualityImage {
  video: string;
  /** Index of the original frame this image is (or is a copy of), unique over the set. */
  original: number;
  /** `original` or a transform name. */
  kind: string;
  bytes: Buffer;
}

/**
 * Sample `perVideo` frames of every corpus video, evenly over its duration, as PNG with
 * a short side of 256 (the pipeline's stored size), plus the transformed copies.
 * Videos whose frames are all near-black or near-white (traitsui-test) are skipped.
 */
export async function buildQualitySet(perVideo: number): Promise<QualityImage[]> {
  const catalog = JSON.parse(fs.readFileSync(path.join(CORPUS, 'catalog.json'), 'utf8')) as Array<{ id: string; file: string; video: { duration_s: number } }>;
  const tmp = fs.mkdtempSync('/tmp/reelset-quality-');
  const images: QualityImage[] = [];
  let original = 0;
  try {
    for (const v of catalog) {
      if (v.id === 'traitsui-test') continue;
      const d = v.video.duration_s;
      for (let i = 0; i < perVideo; i++) {
        const t = (d * (i + 0.5)) / perVideo;
        const out = path.join(tmp, `${v.id}-${i}.png`);
        // Output seeking (-ss after -i): decodes from the start, so broken streams give whole frames.
        execFileSync('ffmpeg', [
          '-v',
          'quiet',
          '-y',
          '-i',
          path.join(CORPUS, v.file),
          '-ss',
          t.toFixed(3),
          '-frames:v',
          '1',
          '-vf',
          'scale=w=-2:h=256:force_original_aspect_ratio=increase',
          out,
        ]);
        if (!fs.existsSync(out)) continue;
        const bytes = fs.readFileSync(out);
        const stats = await sharp(bytes).stats();
        const mean = stats.channels.slice(0, 3).reduce((s, c) => s + c.mean, 0) / 3;
        if (mean < 8 || mean > 247) continue;
        images.push({ video: v.id, original, kind: 'original', bytes });
        for (const [name, fn] of Object.entries(TRANSFORMS)) images.push({ video: v.id, original, kind: name, bytes: await fn(bytes) });
        original++;
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return images;
}

/** dHash (difference hash): greyscale 9x8, one bit per horizontal neighbour comparison; 64 bits as 8 bytes. */
export async function dHash(img: Buffer): Promise<Uint8Array> {
  const px = await sharp(img).greyscale().resize(9, 8, { fit: 'fill' }).raw().toBuffer();
  const out = new Uint8Array(8);
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) if (px[y * 9 + x]! > px[y * 9 + x + 1]!) out[y]! |= 1 << x;
  return out;
}

function hamming(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    while (x) {
      d += x & 1;
      x >>= 1;
    }
  }
  return d;
}

/** Similarities of the counted pairs, by kind. */
export interface PairScores {
  positive: number[];
  negative: number[];
  /** Pairs of the same-scene videos: video pair -> similarities. */
  sameScene: Record<string, number[]>;
  /** Highest similarity of each pair of different videos (for the "which videos look alike" table). */
  maxByVideoPair: Map<string, number>;
}

/** Score every counted pair with `sim(i, j)`. */
export function scorePairs(images: QualityImage[], sim: (i: number, j: number) => number): PairScores {
  const same = new Set(SAME_SCENE_VIDEOS.flatMap(([a, b]) => [`${a}|${b}`, `${b}|${a}`]));
  const out: PairScores = { positive: [], negative: [], sameScene: {}, maxByVideoPair: new Map() };
  for (let i = 0; i < images.length; i++) {
    for (let j = i + 1; j < images.length; j++) {
      const a = images[i]!;
      const b = images[j]!;
      if (a.video === b.video) {
        if (a.original === b.original && (a.kind === 'original' || b.kind === 'original')) out.positive.push(sim(i, j));
        continue;
      }
      const s = sim(i, j);
      const key = [a.video, b.video].sort().join('|');
      out.maxByVideoPair.set(key, Math.max(out.maxByVideoPair.get(key) ?? -Infinity, s));
      if (same.has(`${a.video}|${b.video}`)) (out.sameScene[key] ??= []).push(s);
      else out.negative.push(s);
    }
  }
  return out;
}

/** Precision and recall at a threshold (similarity >= threshold predicts a duplicate). */
export function precisionRecall(
  scores: PairScores,
  threshold: number,
): { threshold: number; precision: number; recall: number; tp: number; fp: number; fn: number } {
  const tp = scores.positive.filter((s) => s >= threshold).length;
  const fp = scores.negative.filter((s) => s >= threshold).length;
  const fn = scores.positive.length - tp;
  return { threshold, precision: tp + fp ? tp / (tp + fp) : 1, recall: scores.positive.length ? tp / scores.positive.length : 1, tp, fp, fn };
}

/** Recall per transform at a threshold. */
export function recallByTransform(images: QualityImage[], sim: (i: number, j: number) => number, threshold: number): Record<string, number> {
  const origOf = new Map<number, number>();
  images.forEach((im, i) => im.kind === 'original' && origOf.set(im.original, i));
  const out: Record<string, [number, number]> = {};
  images.forEach((im, i) => {
    if (im.kind === 'original') return;
    const r = (out[im.kind] ??= [0, 0]);
    r[1]++;
    if (sim(origOf.get(im.original)!, i) >= threshold) r[0]++;
  });
  return Object.fromEntries(Object.entries(out).map(([k, [a, b]]) => [k, a / b]));
}

/** Embedding and dHash similarity functions over a quality set, and the embeddings (`images.length * dim`). */
export async function similarityFunctions(
  images: QualityImage[],
  model: Pick<FeatureExtractor, 'id' | 'embed'>,
): Promise<{ embedding: (i: number, j: number) => number; dhash: (i: number, j: number) => number; vectors: Float32Array }> {
  const dim = model.id.dim;
  const vectors = await model.embed(
    images.map((im) => im.bytes),
    { batchSize: 16 },
  );
  const hashes = await Promise.all(images.map((im) => dHash(im.bytes)));
  return {
    vectors,
    embedding: (i, j) => {
      let s = 0;
      for (let d = 0; d < dim; d++) s += vectors[i * dim + d]! * vectors[j * dim + d]!;
      return s;
    },
    dhash: (i, j) => 1 - hamming(hashes[i]!, hashes[j]!) / 64,
  };
}
