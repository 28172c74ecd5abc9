/**
 * Training benchmark: the recipe's ablation on one dataset and one split, and training
 * time per epoch on wasm against tfjs-node, all in one run.
 *
 * Data: the 49 videos of `../shared/data/registry-corpus` (their own catalog), `count`
 * frames per video from the project's extraction pipeline (short side 256, JPEG q85),
 * one class per video from its catalog labels (first match in {@link CLASS_ORDER}, else
 * `other`), split by video with the dataset step's `splitByVideo` (25% validation, seed
 * 1). As the pipeline does, each training video's frames are clustered at cosine 0.93 on
 * MobileNetV2 features: one labelled representative per cluster, the other members
 * unlabelled (distillation only). Validation: every frame of the validation videos.
 *
 * Models, with the workflow's default hyper-parameters (`TeacherParams`, `StudentParams`):
 * - teacher: a head on InceptionV3 features (ONNX Runtime), with and without label
 *   smoothing, CutMix (pairs embedded by InceptionV3) and class-balanced sampling;
 * - student: a head on MobileNetV2 features distilled from the full teacher with
 *   Jensen-Shannon, with Kullback-Leibler, and trained without a teacher; and the
 *   Jensen-Shannon student with the top of its backbone fine-tuned (tfjs-node).
 * And, to see whether the larger backbone gives a better teacher, the same head on each
 * backbone's features with every training frame labelled.
 * Each is trained with `--seeds` seeds; accuracy is the mean over seeds, per frame and
 * per video (a video's prediction averages its frames' probabilities), with a 95%
 * interval from a bootstrap over validation videos (2000 resamples; frames of one video
 * are not independent, videos are the unit). The corpus is small: the intervals are wide.
 *
 * Per-epoch time: the same teacher, student-head and fine-tuning epochs in child
 * processes on wasm and on tfjs-node, side by side.
 *
 * Usage: `npx tsx bench/training.ts [--frames-per-video 12] [--seeds 3] [--skip ablation,timing]`
 * (`npm run bench:training -- [options]` installs, starts the services and migrates
 * first; the services are not used). Extracted frames and features are cached under
 * `$REELSET_DATA_DIR/bench/training/`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import type * as TfModule from '@tensorflow/tfjs';
import { readCatalogFile, type ResolvedEntry as CatalogEntry } from '../activities/catalog/catalog-file';
import { splitByVideo } from '../activities/dataset/split';
import { nearDuplicateClusters } from '../activities/dedupe/ann';
import { extractFrames } from '../activities/frames/extract';
import { probeVideo } from '../activities/frames/probe';
import { evaluate } from '../activities/training/metrics';
import { predict } from '../activities/training/predict';
import { deserializeModel } from '../activities/training/serialize';
import { distillStudent, fineTuneStudent, type DistillLoss } from '../activities/training/student';
import { trainTeacher } from '../activities/training/teacher';
import { hasConvolutionGradients, loadStudentBackbone, trunkInputs, type StudentBackbone } from '../activities/training/trunk';
import { embeddingModelKey, ExtractOptions, StudentParams, TeacherParams } from '../contracts';
import { loadConfig } from '../lib/config';
import { backboneOptionsFromConfig, decodeForBackbone, MOBILENET_V2, type BackboneName } from '../lib/backbone/model';
import { EmbeddingThread } from '../lib/backbone/thread';
import { deriveSeed, mulberry32, randInt } from '../lib/rng';
import { initTensorflow, type TfBackendPreference } from '../lib/tf';

const CORPUS = path.resolve(__dirname, '../../shared/data/registry-corpus');
/** Class of a video: its first catalog label found in this order, else `other`. */
export const CLASS_ORDER = ['game-cinematic', 'music-visualizer', 'screen-recording', 'person', 'object', 'diagram', 'logo-title'] as const;
const OTHER = 'other';
const TEACHER = TeacherParams.parse({});
const STUDENT = StudentParams.parse({});
const BOOTSTRAP = 2000;

interface Frame {
  videoId: string;
  bytes: Buffer;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function classOf(e: CatalogEntry): string {
  return CLASS_ORDER.find((c) => e.labels.includes(c)) ?? OTHER;
}

/** Frames of every corpus video, extracted once and cached on disk. */
async function corpusFrames(cacheDir: string, entries: CatalogEntry[], perVideo: number): Promise<Frame[]> {
  const opts = ExtractOptions.parse({ mode: 'count', count: perVideo, maxFramesPerVideo: perVideo });
  const dir = path.join(cacheDir, `frames-count${perVideo}`);
  mkdirSync(dir, { recursive: true });
  const frames: Frame[] = [];
  for (const e of entries) {
    const file = path.join(dir, `${e.id}.json`);
    if (!existsSync(file)) {
      const probe = await probeVideo(e.absPath);
      const got: Array<{ index: number; b64: string }> = [];
      await extractFrames(e.absPath, e.sha256 ?? '0'.repeat(64), probe, opts, { has: () => false, put: async (f, bytes) => void got.push({ index: f.index, b64: bytes.toString('base64') }) });
      writeFileSync(file, JSON.stringify(got.sort((a, b) => a.index - b.index).map((g) => g.b64)));
    }
    for (const b64 of JSON.parse(readFileSync(file, 'utf8')) as string[]) frames.push({ videoId: e.id, bytes: Buffer.from(b64, 'base64') });
  }
  return frames;
}

/** Backbone features of every frame on the embedding thread (ONNX Runtime), cached on disk by model key. */
async function features(thread: EmbeddingThread, backbone: BackboneName, frames: Frame[], cacheDir: string, tag: string): Promise<{ raw: Float32Array; unit: Float32Array; dim: number; key: string; backend: string; msPerFrame: number }> {
  const info = await thread.model(backbone);
  const key = embeddingModelKey(info.id);
  const dim = info.id.dim;
  const file = path.join(cacheDir, `${tag}-${key}.f32`);
  const unit = new Float32Array(frames.length * dim);
  const norms = new Float32Array(frames.length);
  let msPerFrame = NaN;
  if (existsSync(file) && existsSync(`${file}.norms`)) {
    unit.set(new Float32Array(new Uint8Array(readFileSync(file)).buffer));
    norms.set(new Float32Array(new Uint8Array(readFileSync(`${file}.norms`)).buffer));
  } else {
    const t = performance.now();
    for (let i = 0; i < frames.length; i += 32) {
      const r = await thread.embed(frames.slice(i, i + 32).map((f) => new Uint8Array(f.bytes)), 16, backbone);
      unit.set(r.vectors, i * dim);
      norms.set(r.norms, i);
    }
    msPerFrame = (performance.now() - t) / frames.length;
    writeFileSync(file, Buffer.from(unit.buffer));
    writeFileSync(`${file}.norms`, Buffer.from(norms.buffer));
  }
  const raw = new Float32Array(unit.length);
  for (let i = 0; i < frames.length; i++) for (let d = 0; d < dim; d++) raw[i * dim + d] = unit[i * dim + d]! * norms[i]!;
  return { raw, unit, dim, key, backend: info.backend, msPerFrame };
}

function rows(a: Float32Array, dim: number, idx: number[]): Float32Array {
  const out = new Float32Array(idx.length * dim);
  idx.forEach((r, i) => out.set(a.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

/** Accuracy per frame and per video of seed-averaged predictions, with 95% intervals from a bootstrap over videos. */
interface Scored {
  frame: number;
  video: number;
  frameCi: [number, number];
  videoCi: [number, number];
  seedRange: { frame: [number, number]; video: [number, number] };
  macroF1Video: number;
}

function score(probsBySeed: Float32Array[], labels: Int32Array, videoIds: string[], names: string[]): Scored {
  const k = names.length;
  const videos = [...new Set(videoIds)];
  // Per seed and video: frames correct, frames, video correct.
  const perSeed = probsBySeed.map((probs) => {
    const ev = evaluate({ probs, numClasses: k, labels, labelNames: names, videoIds });
    const byVideo = new Map<string, { correct: number; n: number; sum: Float32Array; label: number }>();
    videoIds.forEach((v, i) => {
      let e = byVideo.get(v);
      if (!e) byVideo.set(v, (e = { correct: 0, n: 0, sum: new Float32Array(k), label: labels[i]! }));
      let best = 0;
      for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
      e.correct += best === labels[i] ? 1 : 0;
      e.n++;
      for (let j = 0; j < k; j++) e.sum[j] = e.sum[j]! + probs[i * k + j]!;
    });
    const perVideo = videos.map((v) => {
      const e = byVideo.get(v)!;
      let best = 0;
      for (let j = 1; j < k; j++) if (e.sum[j]! > e.sum[best]!) best = j;
      return { correct: e.correct, n: e.n, videoCorrect: best === e.label ? 1 : 0 };
    });
    return { ev, perVideo };
  });
  const acc = (sample: number[]) => {
    let f = 0;
    let vv = 0;
    for (const s of perSeed) {
      let c = 0;
      let n = 0;
      let vc = 0;
      for (const i of sample) {
        c += s.perVideo[i]!.correct;
        n += s.perVideo[i]!.n;
        vc += s.perVideo[i]!.videoCorrect;
      }
      f += c / n;
      vv += vc / sample.length;
    }
    return [f / perSeed.length, vv / perSeed.length] as const;
  };
  const all = videos.map((_, i) => i);
  const [frame, video] = acc(all);
  const rng = mulberry32(20240601);
  const fs: number[] = [];
  const vs: number[] = [];
  for (let b = 0; b < BOOTSTRAP; b++) {
    const [f, v] = acc(all.map(() => randInt(rng, videos.length)));
    fs.push(f);
    vs.push(v);
  }
  const ci = (xs: number[]): [number, number] => {
    const s = [...xs].sort((a, b) => a - b);
    return [s[Math.floor(0.025 * s.length)]!, s[Math.ceil(0.975 * s.length) - 1]!];
  };
  const seedFrame = perSeed.map((s) => s.ev.frames.accuracy ?? 0);
  const seedVideo = perSeed.map((s) => s.ev.videos.accuracy ?? 0);
  return {
    frame,
    video,
    frameCi: ci(fs),
    videoCi: ci(vs),
    seedRange: { frame: [Math.min(...seedFrame), Math.max(...seedFrame)], video: [Math.min(...seedVideo), Math.max(...seedVideo)] },
    macroF1Video: perSeed.reduce((s, p) => s + (p.ev.videos.macroF1 ?? 0), 0) / perSeed.length,
  };
}

function row(name: string, s: Scored, extra = ''): string {
  const r = (x: [number, number]) => `${pct(x[0])}–${pct(x[1])}`;
  return `| ${name} | **${pct(s.frame)}** (${r(s.frameCi)}) | **${pct(s.video)}** (${r(s.videoCi)}) | ${r(s.seedRange.frame)} / ${r(s.seedRange.video)} | ${s.macroF1Video.toFixed(2)} |${extra}`;
}

/** CutMix rows for the teacher, embedded by InceptionV3 on the thread (as the train step does). */
async function cutmixRows(thread: EmbeddingThread, frames: Frame[], trainIdx: number[], labelOf: (i: number) => number, k: number, count: number, seed: number) {
  const { id } = await thread.model('inception_v3');
  const rng = mulberry32(deriveSeed(seed, 7));
  const pairs = Array.from({ length: count }, () => {
    const a = trainIdx[randInt(rng, trainIdx.length)]!;
    let b = trainIdx[randInt(rng, trainIdx.length)]!;
    for (let t = 0; t < 8 && labelOf(b) === labelOf(a); t++) b = trainIdx[randInt(rng, trainIdx.length)]!;
    return [a, b] as const;
  });
  const feats = new Float32Array(count * id.dim);
  const targets = new Float32Array(count * k);
  for (let s = 0; s < count; s += 16) {
    const batch = pairs.slice(s, s + 16);
    const r = await thread.cutmix(batch.map(([a, b]) => [new Uint8Array(frames[a]!.bytes), new Uint8Array(frames[b]!.bytes)] as [Uint8Array, Uint8Array]), batch.map((_, j) => deriveSeed(seed, 8, s + j)), 16, 'inception_v3');
    batch.forEach(([a, b], j) => {
      const i = s + j;
      for (let d = 0; d < id.dim; d++) feats[i * id.dim + d] = r.vectors[j * id.dim + d]! * r.norms[j]!;
      targets[i * k + labelOf(a)] = targets[i * k + labelOf(a)]! + r.lambdas[j]!;
      targets[i * k + labelOf(b)] = targets[i * k + labelOf(b)]! + 1 - r.lambdas[j]!;
    });
  }
  return { features: feats, targets };
}

interface TimingInput {
  teacher: { features: string; labels: number[]; dim: number; extra: string; extraCount: number };
  student: { features: string; labels: number[]; dim: number; probs: string };
  trunk?: { inputs: string; labels: number[] };
  k: number;
  epochs: number;
}

/** Child process: time epochs of each training on one backend. */
async function timingChild(backend: TfBackendPreference, inputFile: string): Promise<void> {
  const input = JSON.parse(readFileSync(inputFile, 'utf8')) as TimingInput;
  const f32 = (file: string) => new Float32Array(new Uint8Array(readFileSync(file)).buffer);
  const rt = await initTensorflow(backend);
  const out: Record<string, unknown> = { backend: rt.backend, native: rt.native ?? null };
  const perEpoch = async (run: (onEpoch: (e: number) => Promise<void>) => Promise<unknown>) => {
    const marks: number[] = [performance.now()];
    await run(async () => void marks.push(performance.now()));
    const d = marks.slice(1).map((m, i) => m - marks[i]!);
    return { firstMs: d[0], medianMs: [...d.slice(1)].sort((a, b) => a - b)[Math.floor((d.length - 1) / 2)] ?? d[0] };
  };
  const k = input.k;
  const tl = Int32Array.from(input.teacher.labels);
  const teacherFeatures = f32(input.teacher.features);
  const extra = { features: f32(input.teacher.extra), targets: f32(`${input.teacher.extra}.targets`) };
  out['teacher'] = await perEpoch((onEpoch) =>
    trainTeacher({ features: teacherFeatures, dim: input.teacher.dim, labels: tl, numClasses: k, epochs: input.epochs, extraSamples: extra, seed: 1, onEpoch: (e) => onEpoch(e) }),
  );
  out['teacherRows'] = tl.length + input.teacher.extraCount;
  const sl = Int32Array.from(input.student.labels);
  out['student'] = await perEpoch((onEpoch) =>
    distillStudent({ features: f32(input.student.features), dim: input.student.dim, labels: sl, numClasses: k, teacherProbs: f32(input.student.probs), epochs: input.epochs, learningRate: TEACHER.learningRate * STUDENT.learningRateFactor, seed: 1, onEpoch: (e) => onEpoch(e) }),
  );
  out['studentRows'] = sl.length;
  if (input.trunk && hasConvolutionGradients(rt.backend)) {
    const bb = await loadStudentBackbone(rt.tf);
    const head = await distillStudent({ features: f32(input.student.features), dim: input.student.dim, labels: sl, numClasses: k, teacherProbs: f32(input.student.probs), epochs: 1, seed: 1 });
    out['fineTune'] = await perEpoch((onEpoch) =>
      fineTuneStudent({ labels: sl, numClasses: k, teacherProbs: f32(input.student.probs), trunk: bb.trunk, trunkInputs: f32(input.trunk!.inputs), head: head.model, epochs: Math.min(input.epochs, 3), seed: 1, onEpoch: (e) => onEpoch(e) }),
    );
    bb.dispose();
  } else out['fineTune'] = null;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--frames-per-video <n>', 'frames per video (count mode)', '12')
    .option('--seeds <n>', 'seeds per variant', '3')
    .option('--timing-epochs <n>', 'epochs timed per training in the wasm / tfjs-node comparison', '4')
    .option('--skip <parts>', 'comma-separated: ablation, finetune, timing', '')
    .option('--timing-child <backend>', '(internal) time epochs on one backend')
    .option('--timing-input <file>', '(internal)')
    .parse();
  const o = program.opts<{ framesPerVideo: string; seeds: string; timingEpochs: string; skip: string; timingChild?: string; timingInput?: string }>();
  if (o.timingChild) return timingChild(o.timingChild as TfBackendPreference, o.timingInput!);
  const skip = new Set(o.skip.split(',').filter(Boolean));
  const seeds = Array.from({ length: Number(o.seeds) }, (_, i) => i + 1);
  const config = loadConfig();
  const cacheDir = path.join(config.REELSET_DATA_DIR, 'bench', 'training');
  mkdirSync(cacheDir, { recursive: true });
  const started = performance.now();
  console.log(`# Training benchmark (${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);

  const entries = await readCatalogFile(path.join(CORPUS, 'catalog.json'));
  const frames = await corpusFrames(cacheDir, entries, Number(o.framesPerVideo));
  const classOfVideo = new Map(entries.map((e) => [e.id, classOf(e)]));
  const names = [...CLASS_ORDER, OTHER].filter((c) => [...classOfVideo.values()].includes(c));
  const k = names.length;
  const { splitOf } = splitByVideo(entries.map((e) => ({ videoId: e.id, label: classOfVideo.get(e.id)! })), 0.25, 1);
  const labelOf = (i: number) => names.indexOf(classOfVideo.get(frames[i]!.videoId)!);
  console.log(`\n## Data: ${entries.length} videos of the registry corpus, ${frames.length} frames (count mode, ${o.framesPerVideo} per video, short side 256)`);
  console.log('\n| class | train videos | validation videos | validation frames |\n| --- | --- | --- | --- |');
  for (const c of names) {
    const vids = entries.filter((e) => classOfVideo.get(e.id) === c);
    const val = vids.filter((e) => splitOf.get(e.id) === 'validation');
    console.log(`| ${c} | ${vids.length - val.length} | ${val.length} | ${frames.filter((f) => val.some((v) => v.id === f.videoId)).length} |`);
  }

  const thread = new EmbeddingThread(backboneOptionsFromConfig(config));
  const mob = await features(thread, 'mobilenet_v2', frames, cacheDir, `count${o.framesPerVideo}`);
  const inc = await features(thread, 'inception_v3', frames, cacheDir, `count${o.framesPerVideo}`);
  console.log(`\nfeatures: ${mob.key} on ${mob.backend}${Number.isNaN(mob.msPerFrame) ? ' (cached)' : `, ${mob.msPerFrame.toFixed(1)} ms/frame`}; ${inc.key} on ${inc.backend}${Number.isNaN(inc.msPerFrame) ? ' (cached)' : `, ${inc.msPerFrame.toFixed(1)} ms/frame`}`);

  // Labelled representatives and unlabelled members, per training video (cosine 0.93 on MobileNetV2, as the dedupe step).
  const labelled: number[] = [];
  const unlabelled: number[] = [];
  const val: number[] = [];
  for (const e of entries) {
    const idx = frames.map((f, i) => (f.videoId === e.id ? i : -1)).filter((i) => i >= 0);
    if (splitOf.get(e.id) === 'validation') {
      val.push(...idx);
      continue;
    }
    const c = nearDuplicateClusters(rows(mob.unit, mob.dim, idx), mob.dim, { threshold: 0.93, method: 'exact' });
    const seen = new Set<number>();
    idx.forEach((r, j) => {
      const cl = c.clusterOf[j]!;
      if (seen.has(cl)) unlabelled.push(r);
      else {
        seen.add(cl);
        labelled.push(r);
      }
    });
  }
  console.log(`training rows: ${labelled.length} labelled representatives, ${unlabelled.length} unlabelled near-duplicates; validation: ${val.length} frames of ${new Set(val.map((i) => frames[i]!.videoId)).size} videos`);

  const rt = await initTensorflow(config.REELSET_TF_BACKEND);
  console.log(`training backend: ${rt.backend}${rt.native ? ` (${rt.native.package}, TensorFlow ${rt.native.tensorflowVersion})` : ''}`);
  const valLabels = Int32Array.from(val, labelOf);
  const valVideos = val.map((i) => frames[i]!.videoId);
  const tLabels = Int32Array.from(labelled, labelOf);
  const sRows = [...labelled, ...unlabelled];
  const sLabels = Int32Array.from([...labelled.map(labelOf), ...unlabelled.map(() => -1)]);
  const cutmixCount = Math.round(labelled.length * TEACHER.cutmixPerFrame);
  const cm = new Map<number, { features: Float32Array; targets: Float32Array }>();
  for (const seed of seeds) cm.set(seed, await cutmixRows(thread, frames, labelled, labelOf, k, cutmixCount, seed));
  await thread.close();

  const teacherVariants = [
    { name: 'recipe: label smoothing 0.1 + CutMix + class-balanced', ls: TEACHER.labelSmoothing, cutmix: true, balanced: true },
    { name: 'without label smoothing', ls: 0, cutmix: true, balanced: true },
    { name: 'without CutMix', ls: TEACHER.labelSmoothing, cutmix: false, balanced: true },
    { name: 'without class-balanced sampling', ls: TEACHER.labelSmoothing, cutmix: true, balanced: false },
    { name: 'none of the three', ls: 0, cutmix: false, balanced: false },
  ];
  const teacherFeatures = rows(inc.raw, inc.dim, labelled);
  const valInc = rows(inc.raw, inc.dim, val);
  const valMob = rows(mob.raw, mob.dim, val);
  const studentFeatures = rows(mob.raw, mob.dim, sRows);
  const recipeTeachers = new Map<number, Awaited<ReturnType<typeof trainTeacher>>>();
  const timings: Record<string, number> = {};
  if (!skip.has('ablation')) {
    console.log(`\n## Teacher (InceptionV3 features ${inc.dim}-d, head ${TEACHER.hidden} hidden, ${TEACHER.epochs} epochs, lr ${TEACHER.learningRate}; CutMix rows: ${cutmixCount}), ${seeds.length} seeds`);
    console.log('\n| teacher | frame accuracy (95% CI) | video accuracy (95% CI) | range over seeds (frame / video) | video macro-F1 |\n| --- | --- | --- | --- | --- |');
    for (const v of teacherVariants) {
      const t0 = performance.now();
      const probs: Float32Array[] = [];
      for (const seed of seeds) {
        const r = await trainTeacher({ features: teacherFeatures, dim: inc.dim, labels: tLabels, numClasses: k, labelSmoothing: v.ls, classBalanced: v.balanced, extraSamples: v.cutmix ? cm.get(seed) : undefined, seed });
        if (v === teacherVariants[0]) recipeTeachers.set(seed, r);
        probs.push(await predict(r.model, valInc, inc.dim));
      }
      timings[`teacher ${v.name}`] = (performance.now() - t0) / 1000;
      console.log(row(v.name, score(probs, valLabels, valVideos, names)));
    }
  }

  if (!skip.has('ablation')) {
    // Does the larger backbone make a better teacher? The same head on each backbone's
    // features, every training frame labelled (no near-duplicate clustering), no CutMix.
    const all = [...labelled, ...unlabelled];
    const allLabels = Int32Array.from(all, labelOf);
    console.log(`\n## Backbones compared: the teacher's head (${TEACHER.hidden} hidden, ${TEACHER.epochs} epochs, label smoothing, class-balanced, no CutMix) on each backbone's features, all ${all.length} training frames labelled, ${seeds.length} seeds`);
    console.log('\n| features | frame accuracy (95% CI) | video accuracy (95% CI) | range over seeds (frame / video) | video macro-F1 |\n| --- | --- | --- | --- | --- |');
    for (const [name, f, v] of [[`InceptionV3 (${inc.dim}-d)`, inc, valInc], [`MobileNetV2 (${mob.dim}-d)`, mob, valMob]] as const) {
      const probs: Float32Array[] = [];
      for (const seed of seeds) {
        const r = await trainTeacher({ features: rows(f.raw, f.dim, all), dim: f.dim, labels: allLabels, numClasses: k, seed });
        probs.push(await predict(r.model, v, f.dim));
      }
      console.log(row(name, score(probs, valLabels, valVideos, names)));
    }
  }

  if (!skip.has('ablation') && recipeTeachers.size) {
    const sEpochs = Math.round(TEACHER.epochs * STUDENT.epochsFactor);
    console.log(`\n## Student (MobileNetV2 features ${mob.dim}-d, head ${STUDENT.hidden} hidden, ${sEpochs} epochs, lr ${TEACHER.learningRate * STUDENT.learningRateFactor}, T = ${STUDENT.temperature}; ${sRows.length} rows of which ${unlabelled.length} unlabelled), teacher: the recipe's, same seed`);
    console.log('\n| student | frame accuracy (95% CI) | video accuracy (95% CI) | range over seeds (frame / video) | video macro-F1 |\n| --- | --- | --- | --- | --- |');
    const heads = new Map<number, Awaited<ReturnType<typeof distillStudent>>>();
    const teacherProbs = new Map<number, Float32Array>();
    for (const seed of seeds) teacherProbs.set(seed, await predict(recipeTeachers.get(seed)!.model, rows(inc.raw, inc.dim, sRows), inc.dim));
    for (const [name, loss] of [['distilled, Jensen-Shannon (recipe)', 'jensen-shannon'], ['distilled, Kullback-Leibler', 'kullback-leibler'], ['no teacher (labelled rows, cross-entropy)', 'none']] as Array<[string, DistillLoss]>) {
      const t0 = performance.now();
      const probs: Float32Array[] = [];
      for (const seed of seeds) {
        const r = await distillStudent({ features: studentFeatures, dim: mob.dim, labels: sLabels, numClasses: k, teacherProbs: teacherProbs.get(seed), distillLoss: loss, epochs: sEpochs, learningRate: TEACHER.learningRate * STUDENT.learningRateFactor, seed });
        if (loss === 'jensen-shannon') heads.set(seed, r);
        probs.push(await predict(r.model, valMob, mob.dim));
      }
      timings[`student ${name}`] = (performance.now() - t0) / 1000;
      console.log(row(name, score(probs, valLabels, valVideos, names)));
    }
    if (!skip.has('finetune') && hasConvolutionGradients(rt.backend)) {
      const t0 = performance.now();
      const bb = await loadStudentBackbone(rt.tf);
      const acts = await activations(bb, frames, sRows);
      const valActs = await activations(bb, frames, val);
      const probs: Float32Array[] = [];
      for (const seed of seeds) {
        const r = await fineTuneStudent({ labels: sLabels, numClasses: k, teacherProbs: teacherProbs.get(seed), trunk: bb.trunk, trunkInputs: acts, head: heads.get(seed)!.model, epochs: STUDENT.fineTuneEpochs, learningRate: TEACHER.learningRate * STUDENT.learningRateFactor, seed });
        const net = await deserializeModel(r.model);
        probs.push(rt.tf.tidy(() => (net.predict(rt.tf.tensor(valActs, [val.length, ...bb.trunk.inputShape])) as TfModule.Tensor).dataSync() as Float32Array).slice());
        net.dispose();
        // The next seed starts from the backbone as shipped.
        bb.trunk.restore(bb.net.full);
      }
      bb.dispose();
      timings['student fine-tuned'] = (performance.now() - t0) / 1000;
      console.log(row(`distilled, Jensen-Shannon, then block_16 + Conv_1 fine-tuned ${STUDENT.fineTuneEpochs} epochs (tfjs-node)`, score(probs, valLabels, valVideos, names)));
    }
  }

  if (!skip.has('timing')) await timingTable(config.REELSET_DATA_DIR, { frames, inc, mob, labelled, sRows, sLabels, tLabels, k, cm: cm.get(seeds[0]!)!, epochs: Number(o.timingEpochs), skipTrunk: skip.has('finetune') });
  console.log(`\nseconds per variant (all seeds): ${Object.entries(timings).map(([n, s]) => `${n} ${s.toFixed(1)}`).join('; ')}`);
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

/** The frozen bottom's activations (the trunk's inputs) of frames. */
async function activations(bb: StudentBackbone, frames: Frame[], idx: number[]): Promise<Float32Array> {
  const pixels = await Promise.all(idx.map((i) => decodeForBackbone(frames[i]!.bytes, MOBILENET_V2)));
  return trunkInputs(bb, pixels, 16);
}

async function timingTable(
  dataDir: string,
  d: { frames: Frame[]; inc: { raw: Float32Array; dim: number }; mob: { raw: Float32Array; dim: number }; labelled: number[]; sRows: number[]; sLabels: Int32Array; tLabels: Int32Array; k: number; cm: { features: Float32Array; targets: Float32Array }; epochs: number; skipTrunk: boolean },
): Promise<void> {
  const dir = path.join(dataDir, 'bench', 'training', 'timing');
  mkdirSync(dir, { recursive: true });
  const put = (name: string, a: Float32Array) => {
    const f = path.join(dir, name);
    writeFileSync(f, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    return f;
  };
  const uniform = new Float32Array(d.sRows.length * d.k).fill(1 / d.k);
  const input: TimingInput = {
    teacher: { features: put('teacher.f32', rows(d.inc.raw, d.inc.dim, d.labelled)), labels: Array.from(d.tLabels), dim: d.inc.dim, extra: put('cutmix.f32', d.cm.features), extraCount: d.cm.targets.length / d.k },
    student: { features: put('student.f32', rows(d.mob.raw, d.mob.dim, d.sRows)), labels: Array.from(d.sLabels), dim: d.mob.dim, probs: put('probs.f32', uniform) },
    k: d.k,
    epochs: d.epochs,
  };
  put('cutmix.f32.targets', d.cm.targets);
  if (!d.skipTrunk) {
    const rt = await initTensorflow();
    if (hasConvolutionGradients(rt.backend)) {
      const bb = await loadStudentBackbone(rt.tf);
      input.trunk = { inputs: put('trunk.f32', await activations(bb, d.frames, d.sRows)), labels: Array.from(d.sLabels) };
      bb.dispose();
    }
  }
  const inputFile = path.join(dir, 'input.json');
  writeFileSync(inputFile, JSON.stringify(input));
  const results: Record<string, { backend: string; native: { tensorflowVersion: string } | null; teacher: { medianMs: number }; student: { medianMs: number }; fineTune: { medianMs: number } | null; teacherRows: number; studentRows: number }> = {};
  for (const backend of ['wasm', 'tensorflow']) {
    const out = execFileSync(process.execPath, [require.resolve('tsx/cli'), __filename, '--timing-child', backend, '--timing-input', inputFile], { encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, maxBuffer: 1 << 24 });
    results[backend] = JSON.parse(out.trim().split('\n').at(-1)!) as (typeof results)[string];
  }
  rmSync(dir, { recursive: true, force: true });
  const w = results['wasm']!;
  const n = results['tensorflow']!;
  const ms = (x: number | undefined) => (x === undefined ? '–' : `${(x / 1000).toFixed(2)} s`);
  console.log(`\n## Training time per epoch, wasm vs tfjs-node (TensorFlow ${n.native?.tensorflowVersion ?? '?'} C library from PyPI), median of ${d.epochs - 1} epochs after the first, side by side in child processes`);
  console.log('\n| training | rows per epoch | wasm | tfjs-node | wasm / tfjs-node |\n| --- | --- | --- | --- | --- |');
  console.log(`| teacher head (InceptionV3 ${d.inc.dim}-d -> ${TEACHER.hidden} -> ${d.k}), batch ${TEACHER.batchSize} | ${w.teacherRows} | ${ms(w.teacher.medianMs)} | ${ms(n.teacher.medianMs)} | ${(w.teacher.medianMs / n.teacher.medianMs).toFixed(1)}x |`);
  console.log(`| student head (MobileNetV2 ${d.mob.dim}-d -> ${STUDENT.hidden} -> ${d.k}), batch ${TEACHER.batchSize} | ${w.studentRows} | ${ms(w.student.medianMs)} | ${ms(n.student.medianMs)} | ${(w.student.medianMs / n.student.medianMs).toFixed(1)}x |`);
  console.log(`| student backbone top (block_16 + Conv_1) + head | ${w.studentRows} | not possible (no Conv2DBackpropFilter) | ${ms(n.fineTune?.medianMs)} | – |`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
