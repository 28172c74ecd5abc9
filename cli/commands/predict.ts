/**
 * `reelset predict <video|image|folder> (--model label[@version|@production] | --model-dir DIR)`:
 * a published student on local files. Images are classified as they are; videos are
 * sampled as the pipeline samples them (ffmpeg, `fps` mode, the quality filters), each
 * frame classified, and the video's result aggregated from its frames (the mean
 * probability, `domain/classifier.ts: aggregateVideo`). With the model's `scope.json`, frames
 * unlike anything it was trained on come back `unknown` (`domain/scope.ts`).
 *
 * `--model-dir` needs no service at all (a copy of `models/<label>/v<N>/student/`, e.g. from
 * `reelset models pull`); `--model` reads the registry (PostgreSQL) and the bucket.
 *
 * Also `reelset models pull <model> --out DIR`: copy a published student (and its
 * scope.json) to a local directory.
 */
import type { Command } from 'commander';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { extractFrames, probeVideo } from '../../activities/frames';
import { exportStudent, resolveModel } from '../../activities/models';
import { BatchPredictInput, failureOf, formatIssues, parseModelRef, type BatchPredictRequest, type FrameRecord } from '../../contracts';
import { ExtractOptions } from '../../contracts/inputs';
import {
  aggregateVideo,
  loadClassifier,
  readClassifierDir,
  readClassifierS3,
  type ClassifierFiles,
  type ImageClassifier,
  type VideoResult,
} from '../../domain/classifier';
import { applyScope, lumaStd, MIN_LUMA_STD, type OutOfScopeReason, type ScopeFile } from '../../domain/scope';
import { loadConfig, type Config } from '../../lib/config';
import { sha256File } from '../../lib/hash';
import type { ObjectStore } from '../../lib/s3';
import { batchPredictWorkflow } from '../../workflows/batch-predict';
import { dataClients, EXIT, printJson, temporalClient, UsageError, workflowUrl } from '../common';

/** File extensions read as images (anything else is probed as a video). */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp']);

/** One classified frame or image. */
export interface FramePrediction {
  /** Seconds into the video (videos), or null (images). */
  timestampS: number | null;
  /** The argmax class, or `unknown` when the out-of-scope gate rejected the frame. */
  label: string;
  probabilities: Record<string, number>;
  /** Cosine similarity (centred features) to the nearest reference frame (null without scope.json). */
  scopeScore: number | null;
  inScope: boolean;
  /** Log-sum-exp of the backbone's 1000 ImageNet logits (the negative free energy; null without scope.json's ImageNet rule or an ImageNet head). */
  imagenetScore: number | null;
  /** Why the gate rejected it: `degenerate` (no structure: black, white, flat), `far` (unlike every reference frame) or `unfamiliar` (low ImageNet log-sum-exp). */
  outOfScope?: OutOfScopeReason;
}

/** The result for one input path. */
export interface PathPrediction {
  path: string;
  kind: 'image' | 'video';
  frames: FramePrediction[];
  /** Videos: the aggregated result; images: the image's own. */
  result: VideoResult | null;
  /** Videos: frames the quality filters dropped (near-black, near-white, blurred). */
  dropped?: Record<string, number>;
  error?: { type: string; message: string };
}

/** A model loaded for predict: the classifier, its scope file (or null), whether the out-of-scope gate applies, and where it came from. */
export interface PredictModel {
  classifier: ImageClassifier;
  scope: ScopeFile | null;
  /** Apply the out-of-scope gate (the degenerate-frame rule, and the nearest-neighbour rule when `scope` is there). */
  gate: boolean;
  source: string;
}

/** Load a model from a directory (model.json, weights.bin, artifact.json, optional scope.json). */
export async function modelFromDir(dir: string, backend: Config['REELSET_TF_BACKEND'] = 'auto'): Promise<PredictModel> {
  const files = await readClassifierDir(dir);
  const scope = await fs
    .readFile(path.join(dir, 'scope.json'), 'utf8')
    .then((s) => JSON.parse(s) as ScopeFile)
    .catch(() => null);
  return { classifier: await loadClassifier(files, backend), scope, gate: true, source: path.resolve(dir) };
}

async function registryFiles(
  config: Config,
  ref: string,
): Promise<{ files: ClassifierFiles; scope: ScopeFile | null; source: string; prefix: string; store: ObjectStore }> {
  const { pool, store } = await dataClients(config, { instead: ', or predict from a model directory with --model-dir' });
  try {
    const m = await resolveModel(pool, parseModelRef(ref));
    if (!m.studentPrefix) throw new UsageError(`${m.name}@${m.version} has no student (image) model`);
    const files = await readClassifierS3(store, m.studentPrefix);
    const scope = (await store.getJson<ScopeFile>(`${m.studentPrefix}/scope.json`)) ?? null;
    return { files, scope, source: `${m.name}@${m.version} (${m.stage}, ${store.uri(`${m.studentPrefix}/`)})`, prefix: m.studentPrefix, store };
  } catch (err) {
    store.destroy();
    throw err;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** The input paths: a file, or the files of a folder (not recursive), sorted. */
async function inputsOf(p: string): Promise<string[]> {
  const st = await fs.stat(p).catch(() => undefined);
  if (!st) throw new UsageError(`${p}: no such file or folder`);
  if (!st.isDirectory()) return [p];
  const names = (await fs.readdir(p, { withFileTypes: true }))
    .filter((d) => d.isFile() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  return names.map((n) => path.join(p, n));
}

async function framePredictions(
  model: PredictModel,
  images: Buffer[],
  probs: Float32Array,
  features: Float32Array,
  dim: number,
  timestamps: (number | null)[],
  imagenetLogits?: Float32Array,
): Promise<FramePrediction[]> {
  const labels = model.classifier.labels;
  const k = labels.length;
  const gate = model.gate ? applyScope(model.scope, features, dim, await Promise.all(images.map((b) => lumaStd(b))), imagenetLogits) : null;
  return timestamps.map((t, i) => {
    const p = probs.subarray(i * k, (i + 1) * k);
    let best = 0;
    for (let j = 1; j < k; j++) if (p[j]! > p[best]!) best = j;
    const inScope = gate ? gate.inScope[i]! : true;
    return {
      timestampS: t,
      label: inScope ? labels[best]! : 'unknown',
      probabilities: Object.fromEntries(labels.map((l, j) => [l, p[j]!])),
      scopeScore: gate?.scores ? gate.scores[i]! : null,
      imagenetScore: gate?.imagenetScores ? gate.imagenetScores[i]! : null,
      inScope,
      ...(gate?.reasons[i] ? { outOfScope: gate.reasons[i]! } : {}),
    };
  });
}

/**
 * Classify local files: images as they are, videos by sampled frames aggregated into a
 * video result. A file that cannot be read or decoded gets an `error` and the others go on.
 *
 * @param opts.fps frames per second sampled from videos; opts.maxFrames the most frames per video.
 */
export async function predictPaths(model: PredictModel, paths: string[], opts: { fps: number; maxFrames: number; config: Config }): Promise<PathPrediction[]> {
  const out: PathPrediction[] = [];
  const extract = ExtractOptions.parse({ mode: 'fps', fps: opts.fps, maxFramesPerVideo: opts.maxFrames, minFramesPerVideo: Math.min(4, opts.maxFrames) });
  for (const p of paths) {
    const kind = IMAGE_EXTENSIONS.has(path.extname(p).toLowerCase()) ? 'image' : 'video';
    try {
      if (kind === 'image') {
        const image = await fs.readFile(p);
        const r = await model.classifier.predict([image]);
        const frames = await framePredictions(model, [image], r.probs, r.features, r.featureDim, [null], r.imagenetLogits);
        out.push({
          path: p,
          kind,
          frames,
          result: aggregateVideo(
            r.probs,
            model.classifier.labels,
            frames.map((f) => f.inScope),
          ),
        });
        continue;
      }
      const file = path.resolve(p);
      const probe = await probeVideo(file, {
        ffprobePath: opts.config.FFPROBE_PATH,
        ffmpegPath: opts.config.FFMPEG_PATH,
        timeoutMs: opts.config.FFPROBE_TIMEOUT_S * 1000,
      });
      const got: Array<{ frame: FrameRecord; bytes: Buffer }> = [];
      const r = await extractFrames(
        file,
        await sha256File(file),
        probe,
        extract,
        { has: () => false, put: async (frame, bytes) => void got.push({ frame, bytes }) },
        {
          ffmpegPath: opts.config.FFMPEG_PATH,
          stallTimeoutMs: opts.config.FFMPEG_STALL_TIMEOUT_S * 1000,
        },
      );
      got.sort((a, b) => a.frame.timestampS - b.frame.timestampS);
      if (got.length === 0) {
        out.push({
          path: p,
          kind,
          frames: [],
          result: null,
          dropped: { ...r.dropped },
          error: { type: 'NoFrames', message: `no usable frame (dropped: ${JSON.stringify(r.dropped)})` },
        });
        continue;
      }
      const pr = await model.classifier.predict(got.map((g) => g.bytes));
      const frames = await framePredictions(
        model,
        got.map((g) => g.bytes),
        pr.probs,
        pr.features,
        pr.featureDim,
        got.map((g) => g.frame.timestampS),
        pr.imagenetLogits,
      );
      out.push({
        path: p,
        kind,
        frames,
        result: aggregateVideo(
          pr.probs,
          model.classifier.labels,
          frames.map((f) => f.inScope),
        ),
        dropped: { ...r.dropped },
      });
    } catch (err) {
      out.push({ path: p, kind, frames: [], result: null, error: failureOf(err) });
    }
  }
  return out;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Register `predict` and `models pull`. */
export function registerPredictCommands(program: Command): void {
  program
    .command('predict')
    .description('classify a video, an image or a folder of them with a published student (per-frame probabilities and the video result)')
    .argument('<path>', 'video, image or folder')
    .option('--model <ref>', 'label[@version|@production|@latest] from the registry (needs PostgreSQL and the bucket)')
    .option('--model-dir <dir>', 'a model directory (model.json, weights.bin, artifact.json[, scope.json]): no service needed')
    .option('--fps <n>', 'frames sampled per second of video', '1')
    .option('--max-frames <n>', 'most frames per video', '32')
    .option('--no-scope', 'do not apply the out-of-scope gate even when scope.json is there')
    .option('--json', 'print the result as JSON')
    .action(async (input: string, opts: { model?: string; modelDir?: string; fps: string; maxFrames: string; scope: boolean; json?: boolean }) => {
      if (!opts.model === !opts.modelDir) throw new UsageError('give exactly one of --model label[@version] or --model-dir DIR');
      const fps = Number(opts.fps);
      const maxFrames = Number(opts.maxFrames);
      if (!(fps > 0 && fps <= 60)) throw new UsageError(`--fps ${opts.fps}: a number in (0, 60]`);
      if (!Number.isInteger(maxFrames) || maxFrames < 1) throw new UsageError(`--max-frames ${opts.maxFrames}: a positive integer`);
      const paths = await inputsOf(input);
      const config = loadConfig();
      let model: PredictModel;
      if (opts.modelDir) model = await modelFromDir(opts.modelDir, config.REELSET_TF_BACKEND);
      else {
        const r = await registryFiles(config, opts.model!);
        r.store.destroy();
        model = { classifier: await loadClassifier(r.files, config.REELSET_TF_BACKEND), scope: r.scope, gate: true, source: r.source };
      }
      if (!opts.scope) model.gate = false;
      try {
        const results = await predictPaths(model, paths, { fps, maxFrames, config });
        const header = {
          model: { source: model.source, labels: model.classifier.labels, workflowId: model.classifier.artifact.workflowId },
          aggregation:
            "mean-probability: a video is the argmax of the mean of its in-scope frames' probabilities; unknown when over half its frames are out of scope",
          scope: !model.gate
            ? null
            : {
                minLumaStd: MIN_LUMA_STD,
                nearestNeighbour: model.scope
                  ? {
                      threshold: model.scope.threshold,
                      quantile: model.scope.quantile,
                      calibration: model.scope.calibration,
                      references: model.scope.references.frameKeys.length,
                    }
                  : null,
              },
        };
        if (opts.json) printJson({ ...header, inputs: results });
        else {
          const gate = !model.gate
            ? 'off'
            : `luma std < ${MIN_LUMA_STD}${model.scope ? ` or similarity < ${model.scope.threshold.toFixed(3)}` : ' (no scope.json: no nearest-neighbour rule)'} is unknown`;
          console.log(`model ${model.source}: ${model.classifier.labels.join(', ')}; out-of-scope gate: ${gate}`);
          for (const r of results) {
            if (r.error) {
              console.log(`${r.path}: error: ${r.error.type}: ${r.error.message}`);
              continue;
            }
            const v = r.result!;
            const probs = Object.entries(v.probabilities)
              .map(([l, p]) => `${l} ${pct(p)}`)
              .join(', ');
            console.log(`${r.path}: ${v.label}  (${r.kind === 'video' ? `${v.frames} frames, ${v.unknownFrames} unknown, mean ` : ''}${probs})`);
            if (r.kind === 'video') {
              for (const f of r.frames)
                console.log(
                  `  ${f.timestampS!.toFixed(2).padStart(8)} s  ${f.label.padEnd(16)} ${Object.entries(f.probabilities)
                    .map(([l, p]) => `${l} ${pct(p)}`)
                    .join(', ')}${f.scopeScore !== null ? `  scope ${f.scopeScore.toFixed(3)}` : ''}`,
                );
            }
          }
        }
        if (results.some((r) => r.error)) process.exitCode = EXIT.failed;
      } finally {
        model.classifier.dispose();
      }
    });

  program
    .command('predict-batch')
    .description('start the batch predict workflow: a model classifies a catalog selection and records model labels')
    .argument('<model>', 'label[@version|@production|@latest]')
    .option('--videos <ids>', 'comma-separated catalog video ids (default: the catalog, or --catalog-label)')
    .option('--catalog-label <label>', 'catalog videos carrying this label (or a descendant)')
    .option('--max-videos <n>', 'most videos', '100')
    .option('--id <workflowId>', 'workflow id (default: batch-predict-<label>-<time>)')
    .option('--no-wait', 'start and print the workflow id')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, opts: { videos?: string; catalogLabel?: string; maxVideos: string; id?: string; wait: boolean; json?: boolean }) => {
      const config = loadConfig();
      const request: BatchPredictRequest = {
        model: ref,
        videoIds: opts.videos
          ? opts.videos
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : [],
        ...(opts.catalogLabel ? { catalogLabel: opts.catalogLabel } : {}),
        maxVideos: Number(opts.maxVideos),
        gpuTaskQueue: config.REELSET_GPU_TASK_QUEUE,
      };
      const parsed = BatchPredictInput.safeParse(request);
      if (!parsed.success) throw new UsageError(`invalid batch predict input: ${formatIssues(parsed.error)}`);
      const workflowId = opts.id ?? `batch-predict-${parseModelRef(ref).label}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      const { client, close } = await temporalClient(config);
      try {
        const handle = await client.workflow.start(batchPredictWorkflow, { taskQueue: config.REELSET_VIDEO_TASK_QUEUE, workflowId, args: [request] });
        if (!opts.wait) {
          if (opts.json) printJson({ workflowId, url: workflowUrl(config, workflowId) });
          else console.log(`started ${workflowId}: ${workflowUrl(config, workflowId)}`);
          return;
        }
        const r = await handle.result();
        if (opts.json) printJson(r);
        else
          console.log(
            `${r.model.name}@${r.model.version}: ${r.videos} videos (${r.failed} failed) ${JSON.stringify(r.perLabel)}; ${r.frameLabels} model labels; ${r.predictionsKey}`,
          );
      } finally {
        await close();
      }
    });

  const models = program.commands.find((c) => c.name() === 'models');
  (models ?? program)
    .command('export')
    .description('export a student to ONNX: student.onnx (float32) and student-fp16.onnx (float16 weights), uint8 pixels in, probabilities and features out')
    .argument('[model]', 'label[@version|@production|@latest] from the registry')
    .option('--model-dir <dir>', 'export a model directory instead of a registry version')
    .requiredOption('--out <dir>', 'directory to write (student.onnx, student-fp16.onnx, artifact.json, export.json)')
    .option('--json', 'print export.json')
    .action(async (ref: string | undefined, opts: { modelDir?: string; out: string; json?: boolean }) => {
      if (!ref === !opts.modelDir) throw new UsageError('give a model reference or --model-dir, not both');
      const config = loadConfig();
      let files: ClassifierFiles;
      let source: string;
      let scope: ScopeFile | null = null;
      if (opts.modelDir) {
        files = await readClassifierDir(opts.modelDir);
        source = path.resolve(opts.modelDir);
      } else {
        const r = await registryFiles(config, ref!);
        r.store.destroy();
        files = r.files;
        source = r.source;
        scope = r.scope;
      }
      const m = await exportStudent(files, opts.out, { toolsDir: config.REELSET_TOOLS_DIR, source });
      if (scope) await fs.writeFile(path.join(opts.out, 'scope.json'), JSON.stringify(scope));
      if (opts.json) printJson(m);
      else
        console.log(
          `${source} -> ${path.resolve(opts.out)}: student.onnx ${(m.files.float32.bytes / 1e6).toFixed(1)} MB, student-fp16.onnx ${(m.files.float16Weights.bytes / 1e6).toFixed(1)} MB`,
        );
    });

  (models ?? program)
    .command('pull')
    .description('copy a published student (model.json, weights.bin, artifact.json, labels.json, scope.json) to a local directory for predict --model-dir')
    .argument('<model>', 'label[@version|@production|@latest]')
    .requiredOption('--out <dir>', 'directory to write')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { out: string; json?: boolean }) => {
      const config = loadConfig();
      const r = await registryFiles(config, ref);
      try {
        await fs.mkdir(opts.out, { recursive: true });
        const written: string[] = [];
        for (const f of ['model.json', 'weights.bin', 'artifact.json', 'labels.json', 'metrics.json', 'scope.json']) {
          const b = await r.store.get(`${r.prefix}/${f}`);
          if (!b) continue;
          await fs.writeFile(path.join(opts.out, f), b);
          written.push(f);
        }
        if (opts.json) printJson({ source: r.source, out: path.resolve(opts.out), files: written });
        else console.log(`${r.source} -> ${path.resolve(opts.out)}: ${written.join(', ')}`);
      } finally {
        r.store.destroy();
      }
    });
}
