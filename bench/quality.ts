/**
 * Quality benchmark: leave-videos-out cross-validation of what reelset trains, per label,
 * over both shared catalogs (`../shared/data`, 20 videos, and its registry corpus, 49
 * videos; rebuilt from their packages when `../shared` is absent, `infra/corpus.ts`).
 *
 * Labels: every catalog label (a video carries its labels and their taxonomy ancestors,
 * `infra/taxonomy.json`) with at least `--min-videos` videos; each is a task of its own,
 * the label against `other`, as a new-category run trains it. Weak labels, as the weak
 * labelling step gives them: every frame of a video the catalog tags with the label is
 * the label, every other frame `other`. The truth scored against is the catalog's own
 * label of each video (a person watched each video and tagged it), at the video level; no
 * frame here was labelled by a person, so human labels are not in this benchmark.
 *
 * Frames: the pipeline's extraction with the new-category defaults (fps 1, at most 60 a
 * video, short side 256, JPEG, the quality filters), cached. Features: each backbone on
 * ONNX Runtime on the embedding thread, cached by model key. For each label, `--folds`
 * folds of videos stratified by the label (each video is tested once, by models that never
 * saw it); in each fold the training videos' frames are deduplicated as the dedupe step does
 * (near-duplicate clusters at the default threshold on the embed step's features; the most
 * central member represents its cluster and is labelled, the other members are unlabelled
 * near-duplicates for distillation).
 *
 * Rows, each with the workflow's defaults (`TeacherParams`, `StudentParams`):
 * - each backbone's linear probe (a linear softmax on the representatives' features, class-balanced);
 * - the teacher (`fitTeacher`: its head on its backbones' concatenated features, CutMix, label
 *   smoothing, class-balanced, cross-fitted and calibrated by video);
 * - the student (the embed step's backbone, `fitStudent`) distilled with Jensen-Shannon, with
 *   Kullback-Leibler, and trained without a teacher (cross-entropy on the representatives),
 *   each with its own video-level calibration;
 * - the Jensen-Shannon student after its backbone's top is fine-tuned (tfjs-node).
 *
 * Per label and row: video accuracy and balanced accuracy, frame accuracy, and the label's
 * precision and recall over videos, each with a 95% bootstrap interval over videos
 * (`contracts/bootstrap.ts`, 2,000 resamples). Then the means over labels, and paired
 * bootstrap intervals over videos of the differences that say whether the teacher earns
 * its name (teacher vs the student without a teacher; the distilled student vs both).
 *
 * With `--whole-teacher on` (default `auto`: on a GPU backend only) a further row: the
 * teacher with its whole backbone fine-tuned (`teacher.fineTune`, the GPU workers'
 * teacher; `--whole-epochs` and `--whole-batch` shrink it for a CPU), compared with the
 * teacher on frozen features and the student without a teacher.
 *
 * Usage: `npx tsx bench/quality.ts [--folds 5] [--min-videos 5] [--labels a,b] [--skip finetune] [--whole-teacher auto|on|off]`
 * (`npm run bench:quality -- [options]` installs, starts the services and migrates first;
 * the services are not used). Frames and features are cached under `$REELSET_DATA_DIR/bench/quality/`.
 */
import type * as TfModule from '@tensorflow/tfjs';
import { Command } from 'commander';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCatalogFile } from '../activities/catalog';
import { nearDuplicateClusters } from '../activities/dedupe';
import {
  deserializeModel,
  fineTuneStudent,
  fineTuneTeacher,
  fitStudent,
  fitTeacher,
  hasConvolutionGradients,
  loadSplitBackbone,
  predict,
  predictPixels,
  trainTeacher,
  trunkInputs,
  wholeBackboneTeacher,
  withLogitOffsets,
  type DistillLoss,
} from '../activities/training';
import {
  BackboneName,
  balancedAccuracyOf,
  bootstrapInterval,
  embeddingModelKey,
  NewCategoryInput,
  pairedDifferenceInterval,
  StudentParams,
  TeacherParams,
  type BootstrapInterval,
} from '../contracts';
import { BACKBONE_NAMES, BACKBONES } from '../domain/backbone/backbones';
import { backboneOptionsFromConfig, decodeForBackbone } from '../domain/backbone/model';
import { EmbeddingThread } from '../domain/backbone/thread';
import { corpusPath } from '../infra/corpus';
import { loadConfig } from '../lib/config';
import { deriveSeed, mulberry32, randInt } from '../lib/rng';
import { initTensorflow } from '../lib/tf';
import { corpusFrames, withAncestors, type Frame } from './corpus-frames';

const DEFAULTS = NewCategoryInput.parse({ label: 'x' });
const TEACHER = TeacherParams.parse({});
const STUDENT = StudentParams.parse({});
const pct = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? '–' : `${(100 * x).toFixed(1)}%`);

/** Raw features (and unit rows) of every frame for a backbone, on the embedding thread, cached by model key. */
async function backboneFeatures(thread: EmbeddingThread, backbone: BackboneName, frames: Frame[], cacheDir: string) {
  const info = await thread.model(backbone);
  const key = embeddingModelKey(info.id);
  const dim = info.id.dim;
  const tag = createHash('sha256')
    .update(frames.map((f) => createHash('sha256').update(f.bytes).digest('hex')).join())
    .digest('hex')
    .slice(0, 12);
  const file = path.join(cacheDir, `${key}-${tag}.f32`);
  const unit = new Float32Array(frames.length * dim);
  const norms = new Float32Array(frames.length);
  let ms = NaN;
  if (existsSync(file) && existsSync(`${file}.norms`)) {
    unit.set(new Float32Array(new Uint8Array(readFileSync(file)).buffer));
    norms.set(new Float32Array(new Uint8Array(readFileSync(`${file}.norms`)).buffer));
  } else {
    const t = performance.now();
    for (let i = 0; i < frames.length; i += 32) {
      const r = await thread.embed(
        frames.slice(i, i + 32).map((f) => new Uint8Array(f.bytes)),
        16,
        backbone,
      );
      unit.set(r.vectors, i * dim);
      norms.set(r.norms, i);
    }
    ms = (performance.now() - t) / frames.length;
    writeFileSync(file, Buffer.from(unit.buffer));
    writeFileSync(`${file}.norms`, Buffer.from(norms.buffer));
  }
  const raw = new Float32Array(unit.length);
  for (let i = 0; i < frames.length; i++) for (let d = 0; d < dim; d++) raw[i * dim + d] = unit[i * dim + d]! * norms[i]!;
  return { raw, unit, dim, key, backend: info.backend, ms };
}

function rows(a: Float32Array, dim: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * dim);
  for (let i = 0; i < idx.length; i++) out.set(a.subarray(idx[i]! * dim, (idx[i]! + 1) * dim), i * dim);
  return out;
}

/** Folds of videos stratified by whether they carry the label: within each class, videos ordered by sha256(seed, id), dealt round-robin. */
function videoFolds(videos: string[], positive: (v: string) => boolean, k: number, seed: number): string[][] {
  const rank = (v: string) => createHash('sha256').update(`${seed}:${v}`).digest('hex');
  const folds: string[][] = Array.from({ length: k }, () => []);
  let o = 0;
  for (const group of [videos.filter(positive), videos.filter((v) => !positive(v))]) {
    for (const v of [...group].sort((a, b) => rank(a).localeCompare(rank(b)))) folds[o++ % k]!.push(v);
  }
  return folds;
}

/** Near-duplicate clusters of the training frames (the dedupe step's threshold on the embed step's unit rows): representatives and members. */
function dedupe(unit: Float32Array, dim: number, idx: number[], threshold: number): { reps: number[]; members: number[] } {
  const { clusterOf } = nearDuplicateClusters(rows(unit, dim, idx), dim, { threshold });
  const byCluster = new Map<number, number[]>();
  idx.forEach((row, j) => byCluster.set(clusterOf[j]!, [...(byCluster.get(clusterOf[j]!) ?? []), row]));
  const reps: number[] = [];
  const members: number[] = [];
  for (const m of byCluster.values()) {
    // The most central member (highest cosine to the cluster's mean) represents it.
    const mean = new Float32Array(dim);
    for (const r of m) for (let d = 0; d < dim; d++) mean[d]! += unit[r * dim + d]!;
    let best = m[0]!;
    let bestS = -Infinity;
    for (const r of m) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += unit[r * dim + d]! * mean[d]!;
      if (s > bestS) [best, bestS] = [r, s];
    }
    reps.push(best);
    members.push(...m.filter((r) => r !== best));
  }
  return { reps: reps.sort((a, b) => a - b), members: members.sort((a, b) => a - b) };
}

/** Per frame, the probability of the label (class 0), out of fold. */
type Scores = Float32Array;

interface LabelResult {
  label: string;
  positives: number;
  /** Row name -> per-frame out-of-fold probability of the label. */
  scores: Map<string, Scores>;
}

interface Metrics {
  videoAccuracy: BootstrapInterval;
  videoBalanced: BootstrapInterval;
  frameAccuracy: BootstrapInterval;
  precision: BootstrapInterval;
  recall: BootstrapInterval;
}

/** Video-level decisions (mean probability >= 0.5 of the label: the argmax of two classes' mean) and the metrics with intervals. */
function metricsOf(scores: Scores, frames: Frame[], videos: string[], positive: (v: string) => boolean): Metrics {
  const framesOf = new Map<string, number[]>();
  frames.forEach((f, i) => framesOf.set(f.videoId, [...(framesOf.get(f.videoId) ?? []), i]));
  const truth = Int32Array.from(videos, (v) => (positive(v) ? 0 : 1));
  const pred = Int32Array.from(videos, (v) => {
    const ix = framesOf.get(v) ?? [];
    const mean = ix.reduce((s, i) => s + scores[i]!, 0) / Math.max(1, ix.length);
    return mean >= 0.5 ? 0 : 1;
  });
  const frameRight = videos.map((v, j) => {
    const ix = framesOf.get(v) ?? [];
    return { right: ix.filter((i) => (scores[i]! >= 0.5 ? 0 : 1) === truth[j]).length, n: ix.length };
  });
  const strata = truth;
  const acc = (ix: Int32Array) => ix.reduce((s, i) => s + (truth[i] === pred[i] ? 1 : 0), 0) / ix.length;
  const frameAcc = (ix: Int32Array) => {
    let r = 0;
    let n = 0;
    for (const i of ix) {
      r += frameRight[i]!.right;
      n += frameRight[i]!.n;
    }
    return n ? r / n : null;
  };
  // Share of the videos in `given` (resampled by ix) that are also in `hit`: precision (given the
  // prediction is the label) and recall (given the truth is), class 0 being the label.
  const share = (given: Int32Array, hit: Int32Array) => (ix: Int32Array) => {
    let both = 0;
    let all = 0;
    for (const i of ix) {
      if (given[i] !== 0) continue;
      all++;
      if (hit[i] === 0) both++;
    }
    return all ? both / all : null;
  };
  const precision = share(pred, truth);
  const recall = share(truth, pred);
  const n = videos.length;
  return {
    videoAccuracy: bootstrapInterval(n, acc, { strata }),
    videoBalanced: bootstrapInterval(n, (ix) => balancedAccuracyOf(truth, pred, ix), { strata }),
    frameAccuracy: bootstrapInterval(n, frameAcc, { strata }),
    precision: bootstrapInterval(n, precision, { strata }),
    recall: bootstrapInterval(n, recall, { strata }),
  };
}

/** Video classes (0 label, 1 other) of a row's out-of-fold scores. */
function videoDecisions(scores: Scores, frames: Frame[], videos: string[]): Int32Array {
  const sum = new Map<string, [number, number]>();
  frames.forEach((f, i) => {
    const e = sum.get(f.videoId) ?? [0, 0];
    sum.set(f.videoId, [e[0] + scores[i]!, e[1] + 1]);
  });
  return Int32Array.from(videos, (v) => {
    const e = sum.get(v) ?? [0, 1];
    return e[0] / e[1] >= 0.5 ? 0 : 1;
  });
}

const ci = (b: BootstrapInterval) => `${pct(b.estimate)} (${pct(b.lower)}–${pct(b.upper)})`;

async function main(): Promise<void> {
  const o = new Command()
    .option('--folds <n>', 'folds of videos per label', '5')
    .option('--min-videos <n>', 'labels with at least this many videos', '5')
    .option('--labels <list>', 'only these labels (comma-separated)')
    .option('--seed <n>', 'seed of the folds and the training', '1')
    .option('--skip <parts>', 'comma-separated: probes, students, finetune', '')
    .option('--whole-teacher <mode>', 'the teacher with its whole backbone fine-tuned: auto (on a GPU backend), on, off', 'auto')
    .option('--whole-epochs <n>', 'its epochs (default: the recipe, teacher.fineTune.epochs)')
    .option('--whole-batch <n>', 'its batch size (default: the recipe, teacher.fineTune.batchSize)')
    .option('--whole-backbone <name>', 'its backbone (default: the recipe, teacher.fineTune.backbone)')
    .parse()
    .opts<{
      folds: string;
      minVideos: string;
      labels?: string;
      seed: string;
      skip: string;
      wholeTeacher: 'auto' | 'on' | 'off';
      wholeEpochs?: string;
      wholeBatch?: string;
      wholeBackbone?: string;
    }>();
  const started = performance.now();
  const skip = new Set(o.skip.split(',').filter(Boolean));
  const seed = Number(o.seed);
  const k = Number(o.folds);
  const config = loadConfig();
  const cacheDir = path.join(config.REELSET_DATA_DIR, 'bench', 'quality');
  mkdirSync(cacheDir, { recursive: true });
  const rt = await initTensorflow(config.REELSET_TF_BACKEND);
  const { tf, backend: trainingBackend } = rt;
  const whole = wholeBackboneTeacher(o.wholeTeacher, rt)
    ? {
        ...TEACHER.fineTune,
        ...(o.wholeEpochs ? { epochs: Number(o.wholeEpochs) } : {}),
        ...(o.wholeBatch ? { batchSize: Number(o.wholeBatch) } : {}),
        ...(o.wholeBackbone ? { backbone: BackboneName.parse(o.wholeBackbone) } : {}),
      }
    : null;
  console.log(
    `# Quality benchmark: leave-videos-out, ${k} folds (${os.cpus().length} cores, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}, training on ${trainingBackend})`,
  );

  const taxonomy = JSON.parse(readFileSync(path.resolve(__dirname, '../infra/taxonomy.json'), 'utf8')) as Array<{ name: string; parent?: string }>;
  const parent = new Map(taxonomy.filter((t) => t.parent).map((t) => [t.name, t.parent!]));
  const entries = [
    ...(await readCatalogFile(path.join(corpusPath('shared'), 'catalog.json'))),
    ...(await readCatalogFile(path.join(corpusPath('registry'), 'catalog.json'))),
  ];
  const labelsOf = new Map(entries.map((e) => [e.id, withAncestors(e.labels, parent)]));
  const frames = await corpusFrames(cacheDir, entries);
  const videos = [...new Set(frames.map((f) => f.videoId))].sort();
  const count = new Map<string, number>();
  for (const v of videos) for (const l of labelsOf.get(v)!) count.set(l, (count.get(l) ?? 0) + 1);
  const labels = o.labels
    ? o.labels.split(',')
    : [...count.entries()]
        .filter(([, c]) => c >= Number(o.minVideos))
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .map(([l]) => l);
  console.log(`\n${entries.length} catalog videos, ${videos.length} with frames, ${frames.length} frames (fps 1, at most 60 a video, short side 256)`);
  console.log(`labels (>= ${o.minVideos} videos): ${labels.map((l) => `${l} ${count.get(l) ?? 0}`).join(', ')}`);

  const thread = new EmbeddingThread(backboneOptionsFromConfig(config));
  const feats = new Map<BackboneName, Awaited<ReturnType<typeof backboneFeatures>>>();
  for (const b of BACKBONE_NAMES) {
    const f = await backboneFeatures(thread, b, frames, cacheDir);
    feats.set(b, f);
    console.log(`features: ${f.key} on ${f.backend}${Number.isNaN(f.ms) ? ' (cached)' : `, ${f.ms.toFixed(1)} ms/frame`}`);
  }
  const embed = feats.get(config.REELSET_EMBED_BACKBONE)!;
  const teacherDim = TEACHER.backbones.reduce((n, b) => n + feats.get(b)!.dim, 0);
  const teacherRow = (idx: ArrayLike<number>) => {
    const out = new Float32Array(idx.length * teacherDim);
    let off = 0;
    for (const b of TEACHER.backbones) {
      const f = feats.get(b)!;
      for (let i = 0; i < idx.length; i++) out.set(f.raw.subarray(idx[i]! * f.dim, (idx[i]! + 1) * f.dim), i * teacherDim + off);
      off += f.dim;
    }
    return out;
  };

  // The student's backbone split for fine-tuning, and every frame's trunk inputs (computed once).
  let split: Awaited<ReturnType<typeof loadSplitBackbone>> | undefined;
  let acts: Float32Array | undefined;
  if (!skip.has('finetune') && !skip.has('students') && hasConvolutionGradients(trainingBackend)) {
    split = await loadSplitBackbone(tf, config.REELSET_EMBED_BACKBONE, { modelsDirs: [config.REELSET_MODELS_DIR] });
    const rowSize = split.trunk.inputShape.reduce((a, b) => a * b, 1);
    acts = new Float32Array(frames.length * rowSize);
    for (let s = 0; s < frames.length; s += 32) {
      const pixels = await Promise.all(frames.slice(s, s + 32).map((f) => decodeForBackbone(f.bytes, BACKBONES[config.REELSET_EMBED_BACKBONE])));
      acts.set(await trunkInputs(split, pixels, 16), s * rowSize);
    }
  }

  // The whole-backbone teacher's images (S x S x 3 bytes each: 203 KB at Lite2's 260 pixels) and its backbone.
  let wholeBb: Awaited<ReturnType<typeof loadSplitBackbone>> | undefined;
  let wholePixels: Uint8Array[] = [];
  if (whole) {
    wholeBb = await loadSplitBackbone(tf, whole.backbone, { modelsDirs: [config.REELSET_MODELS_DIR], at: 'whole' });
    for (let s = 0; s < frames.length; s += 64)
      wholePixels.push(...(await Promise.all(frames.slice(s, s + 64).map((f) => decodeForBackbone(f.bytes, BACKBONES[whole.backbone])))));
    console.log(
      `whole-backbone teacher: ${whole.backbone}, ${whole.epochs} epochs, batch ${whole.batchSize}, SGD ${whole.learningRate} momentum ${whole.momentum}, CutMix ${whole.cutmixProbability}`,
    );
  }

  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      timings[name] = (timings[name] ?? 0) + (performance.now() - t) / 1000;
    }
  };

  const results: LabelResult[] = [];
  for (const label of labels) {
    const positive = (v: string) => labelsOf.get(v)!.has(label);
    const folds = videoFolds(videos, positive, k, seed);
    const scores = new Map<string, Scores>();
    const put = (name: string, idx: number[], probs: Float32Array) => {
      let s = scores.get(name);
      if (!s) scores.set(name, (s = new Float32Array(frames.length).fill(NaN)));
      idx.forEach((row, j) => (s![row] = probs[j * 2]!));
    };
    for (const [fi, testVideos] of folds.entries()) {
      const test = new Set(testVideos);
      const testIdx = frames.flatMap((f, i) => (test.has(f.videoId) ? [i] : []));
      const trainIdx = frames.flatMap((f, i) => (test.has(f.videoId) ? [] : [i]));
      const { reps, members } = dedupe(embed.unit, embed.dim, trainIdx, DEFAULTS.dedupeThreshold);
      const cls = (i: number) => (positive(frames[i]!.videoId) ? 0 : 1);
      const repLabels = Int32Array.from(reps, cls);
      if (new Set(repLabels).size < 2) continue;
      const fseed = deriveSeed(seed, fi);

      if (!skip.has('probes')) {
        for (const b of BACKBONE_NAMES) {
          const f = feats.get(b)!;
          const r = await time(`probe ${b}`, () =>
            trainTeacher({
              features: rows(f.raw, f.dim, reps),
              dim: f.dim,
              labels: repLabels,
              numClasses: 2,
              hidden: 0,
              labelSmoothing: 0,
              dropout: 0,
              epochs: TEACHER.epochs,
              seed: fseed,
            }),
          );
          put(`linear probe, ${b}`, testIdx, await predict(r.model, rows(f.raw, f.dim, testIdx), f.dim));
        }
      }

      // CutMix rows for the teacher: pixel-level pairs of representatives of different classes, each backbone embeds them.
      const m = Math.round(reps.length * TEACHER.cutmixPerFrame);
      const rng = mulberry32(deriveSeed(fseed, 7));
      const pairs = Array.from({ length: m }, () => {
        const a = reps[randInt(rng, reps.length)]!;
        let b = reps[randInt(rng, reps.length)]!;
        for (let t = 0; t < 8 && cls(b) === cls(a); t++) b = reps[randInt(rng, reps.length)]!;
        return [a, b] as const;
      });
      const cm = {
        features: new Float32Array(m * teacherDim),
        targets: new Float32Array(m * 2),
        videos: pairs.map(([a, b]) => [frames[a]!.videoId, frames[b]!.videoId] as [string, string]),
      };
      await time('teacher CutMix rows', async () => {
        let off = 0;
        for (const b of TEACHER.backbones) {
          const dim = feats.get(b)!.dim;
          for (let s = 0; s < m; s += 16) {
            const batch = pairs.slice(s, s + 16);
            const r = await thread.cutmix(
              batch.map(([x, y]) => [new Uint8Array(frames[x]!.bytes), new Uint8Array(frames[y]!.bytes)] as [Uint8Array, Uint8Array]),
              batch.map((_, j) => deriveSeed(fseed, 8, s + j)),
              16,
              b,
            );
            batch.forEach(([x, y], j) => {
              const i = s + j;
              for (let d = 0; d < dim; d++) cm.features[i * teacherDim + off + d] = r.vectors[j * dim + d]! * r.norms[j]!;
              if (off === 0) {
                cm.targets[i * 2 + cls(x)]! += r.lambdas[j]!;
                cm.targets[i * 2 + cls(y)]! += 1 - r.lambdas[j]!;
              }
            });
          }
          off += dim;
        }
      });
      const teacher = await time('teacher', () =>
        fitTeacher({
          features: teacherRow(reps),
          dim: teacherDim,
          labels: repLabels,
          videoIds: reps.map((i) => frames[i]!.videoId),
          numClasses: 2,
          params: TEACHER,
          seed: fseed,
          extra: m ? cm : undefined,
          unlabeled: { features: teacherRow(members), videoIds: members.map((i) => frames[i]!.videoId) },
        }),
      );
      put('teacher', testIdx, await predict(teacher.model, teacherRow(testIdx), teacherDim));
      if (whole && wholeBb) {
        const bb = wholeBb;
        const probs = await time('teacher, whole backbone fine-tuned', async () => {
          const initial = bb.trunk.vars.map((v) => tf.clone(v));
          try {
            const r = await fineTuneTeacher({
              bb,
              pixels: reps.map((i) => wholePixels[i]!),
              labels: repLabels,
              numClasses: 2,
              params: whole,
              labelSmoothing: TEACHER.labelSmoothing,
              classBalanced: TEACHER.classBalanced,
              seed: fseed,
            });
            return await predictPixels(
              tf,
              r.model,
              testIdx.map((i) => wholePixels[i]!),
            );
          } finally {
            bb.trunk.vars.forEach((v, i) => v.assign(initial[i]!)); // the next fit starts from the ImageNet weights
            tf.dispose(initial);
          }
        });
        put('teacher, whole backbone fine-tuned', testIdx, probs);
      }
      if (skip.has('students')) continue;

      // Students on the embed step's features: representatives labelled, members unlabelled.
      const sIdx = [...reps, ...members];
      const sLabels = Int32Array.from([...repLabels, ...members.map(() => -1)]);
      const sFeatures = rows(embed.raw, embed.dim, sIdx);
      let teacherProbs = await predict(teacher.model, teacherRow(sIdx), teacherDim);
      if (STUDENT.teacherTargets === 'cross-fitted' && teacher.outOfFold) {
        const oof = teacher.outOfFold; // labelled then unlabelled rows: the same order as sIdx
        teacherProbs = teacherProbs.map((p, i) => (Number.isFinite(oof[i]!) ? oof[i]! : p));
      }
      const studentOptions = (loss: DistillLoss) => ({
        features: sFeatures,
        dim: embed.dim,
        labels: sLabels,
        numClasses: 2,
        teacher: teacher.model,
        teacherProbs,
        distillLoss: loss,
        temperature: STUDENT.temperature,
        hidden: STUDENT.hidden,
        dropout: STUDENT.dropout,
        hardLabelWeight: STUDENT.hardLabelWeight,
        epochs: Math.max(1, Math.round(TEACHER.epochs * STUDENT.epochsFactor)),
        learningRate: TEACHER.learningRate * STUDENT.learningRateFactor,
        batchSize: TEACHER.batchSize,
        classBalanced: TEACHER.classBalanced,
        seed: fseed,
        videoIds: sIdx.map((i) => frames[i]!.videoId),
        calibrationFolds: STUDENT.calibrationFolds,
      });
      const testFeatures = rows(embed.raw, embed.dim, testIdx);
      for (const [name, loss] of [
        ['student, Jensen-Shannon', 'jensen-shannon'],
        ['student, Kullback-Leibler', 'kullback-leibler'],
        ['student, no teacher', 'none'],
      ] as Array<[string, DistillLoss]>) {
        const r = await time(name, () => fitStudent(studentOptions(loss)));
        const calibrated = r.calibration ? await withLogitOffsets(r.model, r.calibration.offsets) : r.model;
        put(name, testIdx, await predict(calibrated, testFeatures, embed.dim));
        if (loss === 'jensen-shannon' && split && acts) {
          const rowSize = split.trunk.inputShape.reduce((a, b) => a * b, 1);
          const fine = await time('student, Jensen-Shannon, top fine-tuned', async () => {
            const f = await fineTuneStudent({
              ...studentOptions('jensen-shannon'),
              trunk: split!.trunk,
              trunkInputs: rows(acts!, rowSize, sIdx),
              head: r.model,
              epochs: STUDENT.fineTuneEpochs,
            });
            split!.trunk.restore(split!.net.full); // the next fold starts from the backbone as shipped
            return r.calibration ? withLogitOffsets(f.model, r.calibration.offsets) : f.model;
          });
          const net = await deserializeModel(fine);
          const probs = tf
            .tidy(
              () =>
                (
                  net.predict(tf.tensor(rows(acts!, rowSize, testIdx), [testIdx.length, ...split!.trunk.inputShape])) as TfModule.Tensor
                ).dataSync() as Float32Array,
            )
            .slice();
          net.dispose();
          put('student, Jensen-Shannon, top fine-tuned', testIdx, probs);
        }
      }
      process.stdout.write(
        `  ${label}: fold ${fi + 1}/${k} done (${reps.length} representatives, ${members.length} near-duplicates, ${testVideos.length} test videos)\n`,
      );
    }
    results.push({ label, positives: videos.filter(positive).length, scores });
  }
  split?.dispose();
  wholeBb?.dispose();
  wholePixels = [];
  await thread.close();

  // Per label.
  const rowNames = [...new Set(results.flatMap((r) => [...r.scores.keys()]))];
  const means = new Map<string, Record<keyof Metrics, number[]>>();
  for (const r of results) {
    const positive = (v: string) => labelsOf.get(v)!.has(r.label);
    console.log(`\n### ${r.label} (${r.positives} of ${videos.length} videos)\n`);
    console.log(
      '| model | video accuracy | video balanced accuracy | frame accuracy | precision (videos) | recall (videos) |\n| --- | --- | --- | --- | --- | --- |',
    );
    for (const name of rowNames) {
      const s = r.scores.get(name);
      if (!s) continue;
      const mt = metricsOf(s, frames, videos, positive);
      console.log(`| ${name} | ${ci(mt.videoAccuracy)} | ${ci(mt.videoBalanced)} | ${ci(mt.frameAccuracy)} | ${ci(mt.precision)} | ${ci(mt.recall)} |`);
      const e = means.get(name) ?? { videoAccuracy: [], videoBalanced: [], frameAccuracy: [], precision: [], recall: [] };
      for (const key of Object.keys(e) as Array<keyof Metrics>) if (mt[key].estimate !== null) e[key].push(mt[key].estimate!);
      means.set(name, e);
    }
  }

  // Means over labels, and paired differences over videos (all labels together: a resample of videos scores every label on it).
  const avg = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
  console.log(`\n## Means over ${results.length} labels\n`);
  console.log('| model | video accuracy | video balanced accuracy | frame accuracy | precision | recall |\n| --- | --- | --- | --- | --- | --- |');
  for (const name of rowNames) {
    const e = means.get(name)!;
    console.log(
      `| ${name} | ${pct(avg(e.videoAccuracy))} | ${pct(avg(e.videoBalanced))} | ${pct(avg(e.frameAccuracy))} | ${pct(avg(e.precision))} | ${pct(avg(e.recall))} |`,
    );
  }
  const pooled = (a: string, b: string) => {
    const per = results
      .filter((r) => r.scores.has(a) && r.scores.has(b))
      .map((r) => ({
        truth: Int32Array.from(videos, (v) => (labelsOf.get(v)!.has(r.label) ? 0 : 1)),
        a: videoDecisions(r.scores.get(a)!, frames, videos),
        b: videoDecisions(r.scores.get(b)!, frames, videos),
      }));
    const mean = (pick: 'a' | 'b', ix: Int32Array) => {
      const vals = per.map((p) => balancedAccuracyOf(p.truth, p[pick], ix)).filter((x): x is number => x !== null && per.length > 0);
      return vals.length === per.length ? avg(vals) : null;
    };
    const iv = bootstrapInterval(videos.length, (ix) => {
      const ma = mean('a', ix);
      const mb = mean('b', ix);
      return ma === null || mb === null ? null : mb - ma;
    });
    return { iv, labels: per.length };
  };
  console.log('\n## Paired differences of the mean video balanced accuracy over labels (b - a; 95% bootstrap over videos, 2,000 resamples)\n');
  console.log('| a | b | b - a | 95% interval | resamples used |\n| --- | --- | --- | --- | --- |');
  for (const [a, b] of [
    ['student, no teacher', 'teacher'],
    ['student, no teacher', 'student, Jensen-Shannon'],
    ['teacher', 'student, Jensen-Shannon'],
    ['student, Kullback-Leibler', 'student, Jensen-Shannon'],
    ['student, Jensen-Shannon', 'student, Jensen-Shannon, top fine-tuned'],
    [`linear probe, ${config.REELSET_EMBED_BACKBONE}`, 'teacher'],
    ['teacher', 'teacher, whole backbone fine-tuned'],
    ['student, no teacher', 'teacher, whole backbone fine-tuned'],
  ] as Array<[string, string]>) {
    if (!rowNames.includes(a) || !rowNames.includes(b)) continue;
    const { iv } = pooled(a, b);
    console.log(`| ${a} | ${b} | ${pct(iv.estimate)} | ${pct(iv.lower)} to ${pct(iv.upper)} | ${iv.used} |`);
  }
  // Per label for the teacher question, paired over that label's videos.
  console.log('\n| label | teacher - student without a teacher (video balanced accuracy, 95% interval) |\n| --- | --- |');
  for (const r of results) {
    if (!r.scores.has('teacher') || !r.scores.has('student, no teacher')) continue;
    const truth = Int32Array.from(videos, (v) => (labelsOf.get(v)!.has(r.label) ? 0 : 1));
    const d = pairedDifferenceInterval({
      truth,
      a: videoDecisions(r.scores.get('student, no teacher')!, frames, videos),
      b: videoDecisions(r.scores.get('teacher')!, frames, videos),
    });
    console.log(`| ${r.label} | ${pct(d.estimate)} (${pct(d.lower)} to ${pct(d.upper)}) |`);
  }
  console.log(
    `\nseconds: ${Object.entries(timings)
      .map(([n, s]) => `${n} ${s.toFixed(0)}`)
      .join('; ')}`,
  );
  console.log(
    `total ${((performance.now() - started) / 1000).toFixed(0)} s, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
