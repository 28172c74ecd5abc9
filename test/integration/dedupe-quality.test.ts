/**
 * Near-duplicate quality on the shared corpus: re-uploaded copies of frames (JPEG q50,
 * half size, brightness +-10%, 5% crop) must be found as duplicates of their originals
 * (recall >= 97%) while frames of different videos stay apart (precision >= 99.5%), at
 * the default threshold; printed beside the dHash baseline. See bench/dedupe-quality.ts.
 */
import { loadConfig } from '../../lib/config';
import { backboneOptionsFromConfig } from '../../domain/backbone/model';
import { EmbeddingThread } from '../../domain/backbone/thread';
import { nearDuplicateClusters } from '../../activities/dedupe/ann';
import { NewCategoryInput } from '../../contracts/inputs';
import {
  buildQualitySet,
  precisionRecall,
  recallByTransform,
  SAME_SCENE_VIDEOS,
  scorePairs,
  similarityFunctions,
  type QualityImage,
} from '../../bench/dedupe-quality';

jest.setTimeout(300_000);

describe('near-duplicate quality on ../shared/data', () => {
  const threshold = NewCategoryInput.parse({ label: 'x' }).dedupeThreshold;
  let images: QualityImage[];
  let sims: Awaited<ReturnType<typeof similarityFunctions>>;

  beforeAll(async () => {
    images = await buildQualitySet(4);
    // The embed step's backbone as it runs it: ONNX Runtime on the embedding thread.
    const config = loadConfig();
    const thread = new EmbeddingThread(backboneOptionsFromConfig(config));
    try {
      sims = await similarityFunctions(images, await thread.embedder(config.REELSET_EMBED_BACKBONE));
    } finally {
      await thread.close();
    }
  });

  it('embeddings: recall >= 97% at precision >= 99.5% at the default threshold (dHash printed beside)', () => {
    const emb = scorePairs(images, sims.embedding);
    const dh = scorePairs(images, sims.dhash);
    const lines = [`threshold  embedding P / R        dHash P / R   (${emb.positive.length} positive pairs, ${emb.negative.length} cross-video pairs)`];
    for (const t of [0.72, 0.75, 0.79, 0.82, 0.85, 0.88, 0.9, 0.93, 0.96]) {
      const e = precisionRecall(emb, t);
      const d = precisionRecall(dh, t);
      lines.push(
        `${t.toFixed(2)}       ${(100 * e.precision).toFixed(1)}% / ${(100 * e.recall).toFixed(1)}%       ${(100 * d.precision).toFixed(1)}% / ${(100 * d.recall).toFixed(1)}%`,
      );
    }
    lines.push(`recall by transform at ${threshold}: embedding ${JSON.stringify(recallByTransform(images, sims.embedding, threshold))}`);
    process.stdout.write(lines.join('\n') + '\n');
    const atDefault = precisionRecall(emb, threshold);
    expect(atDefault.recall).toBeGreaterThanOrEqual(0.97);
    expect(atDefault.precision).toBeGreaterThanOrEqual(0.995);
  });

  it('clusters at the default threshold keep each original with its copies and never join two videos unless they show the same scene', () => {
    const { clusterOf } = nearDuplicateClusters(sims.vectors, 1280, { threshold });
    const sameScene = new Set(SAME_SCENE_VIDEOS.flatMap(([a, b]) => [a, b]));
    const videosOf = new Map<number, Set<string>>();
    images.forEach((im, i) => videosOf.set(clusterOf[i]!, (videosOf.get(clusterOf[i]!) ?? new Set()).add(im.video)));
    const mixed = [...videosOf.values()].filter((s) => s.size > 1 && ![...s].every((v) => sameScene.has(v)));
    expect(mixed.map((s) => [...s])).toEqual([]);
    const origRow = new Map(images.flatMap((im, i) => (im.kind === 'original' ? [[im.original, i] as const] : [])));
    const together = images.filter((im, i) => clusterOf[i] === clusterOf[origRow.get(im.original)!]).length / images.length;
    process.stdout.write(`cluster recall (copies in their original's cluster): ${(100 * together).toFixed(1)}%\n`);
    expect(together).toBeGreaterThanOrEqual(0.97);
  });
});
