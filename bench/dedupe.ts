/**
 * Dedupe benchmark: prints, in one run,
 *
 * 1. quality on the shared corpus: precision / recall over thresholds for the embeddings
 *    and for dHash, side by side; recall per transform; the most similar pairs of
 *    different videos (bench/dedupe-quality.ts);
 * 2. embedding throughput (bench/embed.ts, in a child process): the embed step's compute path (encoded JPEG -> worker
 *    thread: decode, pixel hash, forward pass -> vectors back) against a bare batched
 *    forward pass of the same model on the same backend (pixels decoded beforehand);
 * 3. clustering time and peak memory for 10k, 100k and 1M synthetic vectors of dim 1280
 *    with known clusters (each size in a child process, so each peak RSS is its own), and
 *    for 10k the exact all-pairs clustering: agreement and speed-up.
 *
 * Usage: `npx tsx bench/dedupe.ts [--sizes 10000,100000,1000000] [--frames-per-video 8] [--skip quality,embed,cluster]`
 * (`npm run bench:dedupe -- [options]` installs, starts the services and migrates first; run it alone on the machine).
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import { nearDuplicateClusters, type NearDuplicateOptions } from '../activities/dedupe';
import { embeddingModelKey } from '../contracts';
import { NewCategoryInput } from '../contracts/inputs';
import { backboneOptionsFromConfig } from '../domain/backbone/model';
import { EmbeddingThread } from '../domain/backbone/thread';
import { loadConfig } from '../lib/config';
import { clusterAgreement, syntheticClusters } from '../test/helpers/synthetic';
import { buildQualitySet, precisionRecall, recallByTransform, SAME_SCENE_VIDEOS, scorePairs, similarityFunctions, type QualityImage } from './dedupe-quality';

const DIM = 1280;
const THRESHOLD = NewCategoryInput.parse({ label: 'x' }).dedupeThreshold;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

async function quality(images: QualityImage[]): Promise<void> {
  const originals = images.filter((i) => i.kind === 'original').length;
  console.log(`\n## 1. Near-duplicate quality: ${originals} frames of ${new Set(images.map((i) => i.video)).size} corpus videos, 5 re-upload copies each`);
  // The embed step's backbone as the embed step runs it: ONNX Runtime on the embedding thread.
  const config = loadConfig();
  const thread = new EmbeddingThread(backboneOptionsFromConfig(config));
  let sims: Awaited<ReturnType<typeof similarityFunctions>>;
  try {
    const embedder = await thread.embedder(config.REELSET_EMBED_BACKBONE);
    console.log(`embeddings: ${embedder.backend}, model ${embeddingModelKey(embedder.id)}`);
    sims = await similarityFunctions(images, embedder);
  } finally {
    await thread.close();
  }
  const emb = scorePairs(images, sims.embedding);
  const dh = scorePairs(images, sims.dhash);
  console.log(`${emb.positive.length} positive pairs (original, copy), ${emb.negative.length} pairs of different videos; dHash similarity = 1 - Hamming/64`);
  // The threshold: the lowest (most recall) at which precision is >= 99.5% there and above, in steps
  // of 0.01, and at least 0.1 above the most similar frames of two unrelated videos (a margin for
  // catalogs larger than this sample, where look-alikes get closer).
  const sameScene = new Set(SAME_SCENE_VIDEOS.map(([a, b]) => [a, b].sort().join('|')));
  const unrelated = Math.max(...[...emb.maxByVideoPair.entries()].filter(([pair]) => !sameScene.has(pair.split('|').sort().join('|'))).map(([, v]) => v));
  const grid = Array.from({ length: 30 }, (_, i) => Math.round((0.7 + i * 0.01) * 100) / 100);
  const chosen = grid.find((t) => t >= unrelated + 0.1 - 1e-9 && grid.filter((u) => u >= t).every((u) => precisionRecall(emb, u).precision >= 0.995));
  console.log(
    `chosen threshold: ${chosen ?? 'none'} (the lowest with precision >= 99.5% there and above, and >= the most similar unrelated videos' frames ${unrelated.toFixed(3)} + 0.1); ` +
      `default in contracts/inputs.ts: ${THRESHOLD}${chosen !== undefined && chosen !== THRESHOLD ? ' (differs: update it)' : ''}`,
  );
  console.log('threshold | embedding precision | recall | dHash precision | recall');
  for (const t of [...new Set([0.72, 0.75, 0.78, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.93, 0.94, 0.96, THRESHOLD, ...(chosen ? [chosen] : [])])].sort()) {
    const e = precisionRecall(emb, t);
    const d = precisionRecall(dh, t);
    console.log(
      `${t.toFixed(2)}${t === THRESHOLD ? '*' : ' '}     | ${pct(e.precision).padStart(6)} (fp ${e.fp})      | ${pct(e.recall).padStart(6)} | ${pct(d.precision).padStart(6)} (fp ${d.fp})  | ${pct(d.recall).padStart(6)}`,
    );
  }
  console.log(
    `(* default threshold) recall per transform at ${THRESHOLD}: embedding ${JSON.stringify(fmt(recallByTransform(images, sims.embedding, THRESHOLD)))}`,
  );
  console.log(`                                  dHash at 0.86: ${JSON.stringify(fmt(recallByTransform(images, sims.dhash, 0.86)))}`);
  const cluster = nearDuplicateClusters(sims.vectors, DIM, { threshold: THRESHOLD });
  const videosOf = new Map<number, Set<string>>();
  images.forEach((im, i) => videosOf.set(cluster.clusterOf[i]!, (videosOf.get(cluster.clusterOf[i]!) ?? new Set()).add(im.video)));
  console.log(
    `clusters at ${THRESHOLD}: ${cluster.count}; clusters joining videos: ${JSON.stringify([...videosOf.values()].filter((s) => s.size > 1).map((s) => [...s]))}`,
  );
  console.log('most similar pairs of different videos (max over their frames): embedding | dHash');
  const top = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
  const te = top(emb.maxByVideoPair);
  const td = top(dh.maxByVideoPair);
  for (let i = 0; i < te.length; i++) console.log(`  ${te[i]![0]} ${te[i]![1].toFixed(3)} | ${td[i]![0]} ${td[i]![1].toFixed(3)}`);
}

function fmt(r: Record<string, number>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, pct(v)]));
}

/** Section 2 is bench/embed.ts (the embed activity and its compute path against a bare ONNX Runtime forward pass), run here as a child. */
function throughput(): void {
  console.log('\n## 2. Embedding throughput (bench/embed.ts)');
  console.log(
    execFileSync(process.execPath, [require.resolve('tsx/cli'), require.resolve('./embed'), '--frames', '144'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    }),
  );
}

interface ClusterRun {
  n: number;
  clusters: number;
  genS: number;
  annS: number;
  timings: Record<string, number>;
  candidates: number;
  truthAgreement: number;
  maxRssKb: number;
  exactS?: number;
  annVsExact?: number;
}

/** One size, in this process (called in a child: `--cluster-child N`). */
function clusterChild(n: number, withExact: boolean): ClusterRun {
  let t = performance.now();
  const data = syntheticClusters(n, DIM, 11);
  const genS = (performance.now() - t) / 1000;
  t = performance.now();
  // REELSET_BENCH_ANN='{"expansionSearch":128}' overrides index parameters (for tuning).
  const overrides = JSON.parse(process.env.REELSET_BENCH_ANN ?? '{}') as Partial<NearDuplicateOptions>;
  const ann = nearDuplicateClusters(data.vectors, DIM, { threshold: THRESHOLD, method: 'ann', ...overrides });
  const annS = (performance.now() - t) / 1000;
  const out: ClusterRun = {
    n,
    clusters: data.clusters,
    genS,
    annS,
    timings: ann.timings,
    candidates: ann.candidates,
    truthAgreement: clusterAgreement(ann.clusterOf, data.truth),
    maxRssKb: 0,
  };
  if (withExact) {
    t = performance.now();
    const exact = nearDuplicateClusters(data.vectors, DIM, { threshold: THRESHOLD, method: 'exact' });
    out.exactS = (performance.now() - t) / 1000;
    out.annVsExact = clusterAgreement(ann.clusterOf, exact.clusterOf);
  }
  out.maxRssKb = process.resourceUsage().maxRSS;
  return out;
}

function clustering(sizes: number[]): void {
  console.log(
    `\n## 3. Clustering synthetic vectors, dim ${DIM}, threshold ${THRESHOLD}, ${os.availableParallelism()} threads (HNSW M=16, efC=64, efS=64, k=16, projection to 64-d)`,
  );
  console.log(
    'n | true clusters | generate s | cluster s (project / index / search / verify / refine) | peak RSS | agreement with truth | exact all-pairs s | ann vs exact | speed-up',
  );
  for (const n of sizes) {
    const json = execFileSync(process.execPath, [...process.execArgv, __filename, '--cluster-child', String(n), ...(n <= 10_000 ? ['--exact'] : [])], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    const r = JSON.parse(json.trim().split('\n').pop()!) as ClusterRun;
    const tm = r.timings;
    const phases = [tm.projectMs, tm.indexMs, tm.searchMs, tm.verifyMs, tm.refineMs].map((x) => (x! / 1000).toFixed(1)).join(' / ');
    console.log(
      `${n} | ${r.clusters} | ${r.genS.toFixed(1)} | ${r.annS.toFixed(1)} (${phases}) | ${mb(r.maxRssKb)} | ${pct(r.truthAgreement)} | ` +
        (r.exactS !== undefined ? `${r.exactS.toFixed(1)} | ${pct(r.annVsExact!)} | ${(r.exactS / r.annS).toFixed(1)}x` : '- | - | -'),
    );
  }
}

async function main(): Promise<void> {
  const child = process.argv.indexOf('--cluster-child');
  if (child >= 0) {
    console.log(JSON.stringify(clusterChild(Number(process.argv[child + 1]), process.argv.includes('--exact'))));
    return;
  }
  const skip = new Set(arg('skip', '').split(','));
  const sizes = arg('sizes', '10000,100000,1000000').split(',').map(Number);
  console.log(`# reelset dedupe benchmark (${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version})`);
  const needImages = !skip.has('quality');
  const images = needImages ? await buildQualitySet(Number(arg('frames-per-video', '8'))) : [];
  if (!skip.has('quality')) await quality(images);
  if (!skip.has('embed')) throughput();
  if (!skip.has('cluster')) clustering(sizes);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
