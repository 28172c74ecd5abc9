/**
 * Out-of-scope benchmark: how many of lavfi's structured test patterns the out-of-scope
 * gate (`domain/scope.ts`) rejects, against the share of in-scope frames it loses, on videos
 * it never saw.
 *
 * In scope: the frames of both shared catalogs (69 videos, the pipeline's extraction,
 * cached with `bench/quality.ts`'s). Out of scope: 15 lavfi sources, one frame each at
 * 320x240 (SMPTE and PAL bars, testsrc, testsrc2, rgbtestsrc, yuvtestsrc, mandelbrot,
 * life, cellauto, sierpinski, gradients, and black, white and grey fields).
 *
 * `--folds` folds of videos: in each, the other videos play a model's dataset, as
 * `calibrateScope` uses one: a quarter of them (by hash) are its validation videos, whose
 * frames set the thresholds; the rest its training videos, 400 evenly spaced frames of
 * which are the references. Then the fold's own videos' frames (never seen) give the
 * in-scope cost, and the patterns the rejection. Features and ImageNet logits are the embed
 * step's backbone as shipped (a student's before its top is fine-tuned).
 *
 * Rules compared, each at the same total quantile `q` (default 0.05) of validation frames:
 * the flat-frame rule alone (no `scope.json`); with the nearest-neighbour rule (Sun et al.
 * 2022) at `q`; with the ImageNet log-sum-exp rule (Liu et al. 2020) at `q`; with both at
 * `q/2` each (what `calibrateScope` writes). The in-scope cost has a 95% bootstrap interval
 * over held-out videos (2,000 resamples).
 *
 * Usage: `npx tsx bench/scope.ts [--folds 5] [--quantile 0.05]` (`npm run bench:scope`).
 */
import { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCatalogFile } from '../activities/catalog';
import { evenlySpaced } from '../activities/models';
import { bootstrapInterval } from '../contracts';
import { backboneOptionsFromConfig } from '../domain/backbone/model';
import { EmbeddingThread } from '../domain/backbone/thread';
import { applyScope, centred, encodeReferences, logSumExp, lumaStd, meanRow, nearestSimilarity, quantile, type ScopeFile } from '../domain/scope';
import { corpusPath } from '../infra/corpus';
import { loadConfig } from '../lib/config';
import { corpusFrames } from './corpus-frames';

/** lavfi sources, as the model-lifecycle test makes them. */
export const PATTERNS = [
  'testsrc',
  'testsrc2',
  'smptebars',
  'smptehdbars',
  'pal100bars',
  'rgbtestsrc',
  'yuvtestsrc',
  'mandelbrot',
  'color=c=black',
  'color=c=white',
  'color=c=gray',
  'cellauto',
  'life',
  'sierpinski',
  'gradients',
];

interface Embedded {
  raw: Float32Array;
  logits: Float32Array;
  lumas: number[];
  dim: number;
}

async function embed(thread: EmbeddingThread, backbone: Parameters<EmbeddingThread['logits']>[1], images: Buffer[]): Promise<Embedded> {
  const parts: Array<{ vectors: Float32Array; norms: Float32Array; logits: Float32Array }> = [];
  for (let s = 0; s < images.length; s += 32)
    parts.push(
      await thread.logits(
        images.slice(s, s + 32).map((b) => new Uint8Array(b)),
        backbone,
        16,
      ),
    );
  const dim = parts[0]!.vectors.length / parts[0]!.norms.length;
  const raw = new Float32Array(images.length * dim);
  const logits = new Float32Array(images.length * 1000);
  let i = 0;
  for (const p of parts) {
    for (let j = 0; j < p.norms.length; j++, i++) {
      for (let d = 0; d < dim; d++) raw[i * dim + d] = p.vectors[j * dim + d]! * p.norms[j]!;
      logits.set(p.logits.subarray(j * 1000, (j + 1) * 1000), i * 1000);
    }
  }
  return { raw, logits, lumas: await Promise.all(images.map((b) => lumaStd(b))), dim };
}

function pick(e: Embedded, idx: number[]): Embedded {
  const raw = new Float32Array(idx.length * e.dim);
  const logits = new Float32Array(idx.length * 1000);
  idx.forEach((r, i) => {
    raw.set(e.raw.subarray(r * e.dim, (r + 1) * e.dim), i * e.dim);
    logits.set(e.logits.subarray(r * 1000, (r + 1) * 1000), i * 1000);
  });
  return { raw, logits, lumas: idx.map((r) => e.lumas[r]!), dim: e.dim };
}

const rank = (seed: number, tag: string, id: string) => createHash('sha256').update(`${seed}:${tag}:${id}`).digest('hex');

async function main(): Promise<void> {
  const o = new Command()
    .option('--folds <k>', 'folds of videos', '5')
    .option('--quantile <q>', 'share of in-scope validation frames the gate may reject', '0.05')
    .option('--seed <n>', 'seed of the folds', '1')
    .parse(process.argv)
    .opts<{ folds: string; quantile: string; seed: string }>();
  const k = Number(o.folds);
  const q = Number(o.quantile);
  const seed = Number(o.seed);
  const started = performance.now();
  const config = loadConfig();
  const backbone = config.REELSET_EMBED_BACKBONE;
  const entries = [
    ...(await readCatalogFile(path.join(corpusPath('shared'), 'catalog.json'))),
    ...(await readCatalogFile(path.join(corpusPath('registry'), 'catalog.json'))),
  ];
  const frames = await corpusFrames(path.join(config.REELSET_DATA_DIR, 'bench', 'quality'), entries);
  const videos = [...new Set(frames.map((f) => f.videoId))].sort((a, b) => rank(seed, 'fold', a).localeCompare(rank(seed, 'fold', b)));
  const foldOf = new Map(videos.map((v, i) => [v, i % k]));
  console.log(
    `# Out-of-scope gate: ${frames.length} frames of ${videos.length} videos, ${k} folds of videos, ${PATTERNS.length} lavfi patterns, q = ${q}; ${backbone} (${os.cpus().length} cores)`,
  );

  const thread = new EmbeddingThread(backboneOptionsFromConfig(config));
  const corpus = await embed(
    thread,
    backbone,
    frames.map((f) => f.bytes),
  );
  const patternImages = PATTERNS.map((p) =>
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      `${p}${p.includes('=') ? ':' : '='}size=320x240`,
      '-frames:v',
      '1',
      '-f',
      'image2',
      '-c:v',
      'mjpeg',
      '-q:v',
      '3',
      'pipe:1',
    ]),
  );
  const patterns = await embed(thread, backbone, patternImages);
  await thread.close();
  const energy = logSumExp(corpus.logits, 1000);

  type Rule = 'flat frames only' | 'nearest neighbour' | 'ImageNet log-sum-exp' | 'both (q/2 each)';
  const rules: Rule[] = ['flat frames only', 'nearest neighbour', 'ImageNet log-sum-exp', 'both (q/2 each)'];
  const rejectedFrame = new Map<Rule, Uint8Array>(rules.map((r) => [r, new Uint8Array(frames.length)]));
  const patternsRejected = new Map<Rule, number[]>(rules.map((r) => [r, []]));
  const patternMisses = new Map<Rule, Map<string, number>>(rules.map((r) => [r, new Map()]));
  for (let f = 0; f < k; f++) {
    const others = videos.filter((v) => foldOf.get(v) !== f);
    const validation = new Set(others.filter((v) => parseInt(rank(seed, 'validation', v).slice(0, 8), 16) % 4 === 0));
    const trainIdx = frames.flatMap((x, i) => (foldOf.get(x.videoId) !== f && !validation.has(x.videoId) ? [i] : []));
    const valIdx = frames.flatMap((x, i) => (validation.has(x.videoId) ? [i] : []));
    const testIdx = frames.flatMap((x, i) => (foldOf.get(x.videoId) === f ? [i] : []));
    const refIdx = evenlySpaced(trainIdx.length, 400).map((i) => trainIdx[i]!);
    const refs = pick(corpus, refIdx);
    const center = meanRow(refs.raw, refs.dim);
    const refC = centred(refs.raw, center, refs.dim);
    const nnVal = nearestSimilarity(centred(pick(corpus, valIdx).raw, center, refs.dim), refC, refs.dim);
    const eVal = Float32Array.from(valIdx, (i) => energy[i]!);
    const scopeOf = (nnQ: number | null, eQ: number | null): ScopeFile => ({
      format: 'reelset-scope/1',
      k: 1,
      threshold: nnQ === null ? -Infinity : quantile(nnVal, nnQ),
      quantile: q,
      calibration: 'validation',
      calibrationFrames: valIdx.length,
      dim: refs.dim,
      center: encodeReferences(center),
      references: { frameKeys: refIdx.map(String), videoIds: refIdx.map((i) => frames[i]!.videoId), features: encodeReferences(refC) },
      ...(eQ === null ? {} : { imagenet: { score: 'logsumexp' as const, threshold: quantile(eVal, eQ), quantile: eQ } }),
    });
    const scopes: Record<Rule, ScopeFile | null> = {
      'flat frames only': null,
      'nearest neighbour': scopeOf(q, null),
      'ImageNet log-sum-exp': scopeOf(null, q),
      'both (q/2 each)': scopeOf(q / 2, q / 2),
    };
    const test = pick(corpus, testIdx);
    for (const r of rules) {
      const s = scopes[r];
      const t = applyScope(s, s ? test.raw : new Float32Array(0), s ? test.dim : 0, test.lumas, test.logits);
      testIdx.forEach((row, i) => (rejectedFrame.get(r)![row] = t.inScope[i] ? 0 : 1));
      const p = applyScope(s, s ? patterns.raw : new Float32Array(0), s ? patterns.dim : 0, patterns.lumas, patterns.logits);
      patternsRejected.get(r)!.push(p.inScope.filter((x) => !x).length);
      p.inScope.forEach((x, i) => x && patternMisses.get(r)!.set(PATTERNS[i]!, (patternMisses.get(r)!.get(PATTERNS[i]!) ?? 0) + 1));
    }
    process.stdout.write(`  fold ${f + 1}/${k}: ${refIdx.length} references, ${valIdx.length} validation frames, ${testIdx.length} held-out frames\n`);
  }

  // Per video, the share of its frames rejected; the cost is over frames, resampled by video.
  const byVideo = videos.map((v) => frames.flatMap((x, i) => (x.videoId === v ? [i] : [])));
  const pct = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
  console.log(
    `\n| rule | lavfi patterns rejected (of ${PATTERNS.length}, per fold) | held-out in-scope frames rejected (95% interval over videos) | patterns let through (folds) |\n| --- | --- | --- | --- |`,
  );
  for (const r of rules) {
    const rej = rejectedFrame.get(r)!;
    const cost = bootstrapInterval(videos.length, (ix) => {
      let n = 0;
      let bad = 0;
      for (const v of ix) {
        for (const i of byVideo[v]!) {
          n++;
          bad += rej[i]!;
        }
      }
      return n ? bad / n : null;
    });
    const per = patternsRejected.get(r)!;
    const misses = [...patternMisses.get(r)!.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([p, n]) => `${p} (${n})`)
      .join(', ');
    console.log(
      `| ${r} | ${(per.reduce((a, b) => a + b, 0) / per.length).toFixed(1)} (${Math.min(...per)}–${Math.max(...per)}) | ${pct(cost.estimate)} (${pct(cost.lower)}–${pct(cost.upper)}) | ${misses || 'none'} |`,
    );
  }
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
