/**
 * Runs in a child process (plain tsx, outside jest's vm realm, where tfjs-node's native
 * typed arrays are not what tfjs expects): the training pieces that need the native
 * TensorFlow backend, on real frames of the repository's sample videos. Prints one JSON
 * line that `test/unit/training-native.test.ts` checks.
 *
 * Usage: `tsx test/helpers/native-training.ts <backend preference>`
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type * as TfModule from '@tensorflow/tfjs';
import pino from 'pino';
import { decodeForBackbone, EFFICIENTNET_LITE0, preparationOf } from '../../domain/backbone/model';
import { initTensorflow, type TfBackendPreference } from '../../lib/tf';
import { readHeadMetadata } from '../../activities/training/head-model';
import { predict, predictImages } from '../../activities/training/predict';
import { deserializeModel, serializeModel, type SerializedModel } from '../../activities/training/serialize';
import { distillStudent, fineTuneStudent } from '../../activities/training/student';
import { trainTeacher } from '../../activities/training/teacher';
import { hasConvolutionGradients, imageModel, loadSplitBackbone, trunkInputs } from '../../activities/training/trunk';
import { fineTuneTeacher, fitWholeTeacher, predictPixels } from '../../activities/training/teacher-finetune';
import { TeacherFineTuneParams } from '../../contracts';
import type { Tf } from '../../lib/tf';

const VIDEOS = path.resolve(__dirname, '../../samples/videos');

/** `n` JPEG frames of a video, evenly spread over its first `span` seconds, short side 256. */
function frames(video: string, n: number, span: number): Buffer[] {
  return Array.from({ length: n }, (_, i) =>
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-ss',
      String((span * i) / n),
      '-i',
      path.join(VIDEOS, video),
      '-frames:v',
      '1',
      '-vf',
      'scale=-2:256',
      '-f',
      'image2pipe',
      '-c:v',
      'mjpeg',
      '-q:v',
      '4',
      '-',
    ]),
  );
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function main(): Promise<void> {
  const preference = (process.argv[2] ?? 'auto') as TfBackendPreference;
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  const rt = await initTensorflow(preference, logger);
  const out: Record<string, unknown> = {
    backend: rt.backend,
    native: rt.native ?? null,
    log: lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l['msg']).startsWith('TensorFlow.js backend')),
  };
  if (process.argv[3] === 'select-only') {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const { tf } = rt;
  // Three classes, one sample video each.
  const images = [...frames('cockatoo.mp4', 6, 4), ...frames('tree.avi', 6, 4), ...frames('motion.mov', 6, 3)];
  const labels = Int32Array.from(images.map((_, i) => Math.floor(i / 6)));
  const pixels = await Promise.all(images.map((b) => decodeForBackbone(b, EFFICIENTNET_LITE0)));
  if (process.argv[3] === 'teacher-whole') {
    Object.assign(out, await wholeBackboneTeacher(tf, images, pixels, labels));
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const bb = await loadSplitBackbone(tf, 'efficientnet_lite0');
  const acts = await trunkInputs(bb, pixels, 8);
  // Features through the trunk as loaded (the backbone's own pooled features).
  const feats = tf.tidy(() => bb.trunk.apply(tf.tensor(acts, [images.length, ...bb.trunk.inputShape])).dataSync() as Float32Array);
  const dim = 1280;
  const teacher = await trainTeacher({ features: feats, dim, labels, numClasses: 3, hidden: 16, epochs: 8, batchSize: 6, seed: 3, backend: preference });
  const common = {
    labels,
    numClasses: 3,
    teacher: teacher.model,
    teacherFeatures: { features: feats, dim },
    hidden: 8,
    batchSize: 6,
    seed: 5,
    backend: preference,
  } as const;
  const head = await distillStudent({ ...common, features: feats, dim, epochs: 6 });

  const names = bb.trunk.names;
  const before = bb.trunk.vars.map((v) => v.dataSync().slice() as Float32Array);
  let ckpt: SerializedModel | undefined;
  const full = await fineTuneStudent({
    ...common,
    trunk: bb.trunk,
    trunkInputs: acts,
    head: head.model,
    epochs: 3,
    onEpoch: async (e, _l, w) => void (e === 1 ? (ckpt = await w()) : undefined),
  });
  const after = bb.trunk.vars.map((v) => v.dataSync().slice() as Float32Array);
  const changed = before.filter((b, i) => maxAbsDiff(b, after[i]!) > 0).length;
  // Resume from the epoch-1 checkpoint on a freshly loaded backbone: same final weights, bit for bit.
  const bb2 = await loadSplitBackbone(tf, 'efficientnet_lite0');
  const resumed = await fineTuneStudent({ ...common, trunk: bb2.trunk, trunkInputs: acts, head: head.model, epochs: 3, resume: { epoch: 1, weights: ckpt! } });
  const identicalResume = full.model.weights.equals(resumed.model.weights);

  // The published image model gives the same probabilities as the trunk and head on the activations.
  const image = await imageModel(bb, full.model, 'reelset_student');
  const published = await serializeModel(image, { metadata: { reelset: readHeadMetadata(full.model) } });
  const onImages = await predictImages(
    published,
    preparationOf({ size: 224, blurSigma: 0, resize: 'crop', range: [0, 255] }),
    async (s, e) => images.slice(s, e),
    images.length,
  );
  const topHead = await deserializeModel(full.model);
  const onActs = tf.tidy(() => (topHead.predict(tf.tensor(acts, [images.length, ...bb.trunk.inputShape])) as TfModule.Tensor).dataSync() as Float32Array);
  topHead.dispose();
  const headOnFrozen = await predict(head.model, feats, dim);
  const json = JSON.parse(published.modelJson) as {
    weightsManifest: { paths: string[] }[];
    modelTopology: { model_config?: { config: { layers: unknown[] } } };
  };
  Object.assign(out, {
    convGradients: hasConvolutionGradients(rt.backend),
    trunkInputShape: bb.trunk.inputShape,
    trunkParams: names.length,
    trunkChanged: changed,
    fineTuneLoss: full.history.map((h) => h.loss),
    identicalResume,
    imageVsTrunkMaxDiff: maxAbsDiff(onImages, onActs),
    headChangedPredictions: maxAbsDiff(onActs, headOnFrozen),
    publishedInput: image.inputs[0]!.shape,
    publishedOutput: image.outputs[0]!.shape,
    publishedImagenetOutput: image.outputs[1]?.shape ?? null,
    fineTuneFrom: bb.fineTuneFrom,
    publishedWeightsPaths: json.weightsManifest[0]!.paths,
    publishedLayers: json.modelTopology.model_config?.config.layers.length ?? null,
    publishedBytes: published.weights.length,
  });
  bb.dispose();
  bb2.dispose();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/**
 * The teacher's whole-backbone fine-tuning in a tiny configuration (Lite0, 18 frames,
 * batch 6, 2 epochs, every batch CutMixed): what changed, the loss, a bit-identical resume
 * (SGD momentum and the cosine schedule by step), the published image model against the
 * checkpoint model, and the cross-fitting over four pseudo-videos per class.
 */
async function wholeBackboneTeacher(tf: Tf, images: Buffer[], pixels: Buffer[], labels: Int32Array): Promise<Record<string, unknown>> {
  const params = { ...TeacherFineTuneParams.parse({}), backbone: 'efficientnet_lite0' as const, epochs: 2, batchSize: 6, cutmixProbability: 1 };
  const started = Date.now();
  const bb = await loadSplitBackbone(tf, 'efficientnet_lite0', { at: 'whole' });
  const before = bb.trunk.vars.map((v) => v.dataSync().slice() as Float32Array);
  const common = { bb, pixels, labels, numClasses: 3, params, labelSmoothing: 0.1, classBalanced: true, seed: 4 };
  let ckpt: SerializedModel | undefined;
  const full = await fineTuneTeacher({ ...common, onEpoch: async (e, _l, w) => void (e === 1 ? (ckpt = await w()) : undefined) });
  const fitMs = Date.now() - started;
  const after = bb.trunk.vars.map((v) => v.dataSync().slice() as Float32Array);
  const changed = before.filter((b, i) => maxAbsDiff(b, after[i]!) > 0).length;
  const bb2 = await loadSplitBackbone(tf, 'efficientnet_lite0', { at: 'whole' });
  const resumed = await fineTuneTeacher({ ...common, bb: bb2, resume: { epoch: 1, weights: ckpt! } });
  const identicalResume = full.model.weights.equals(resumed.model.weights);
  bb2.dispose();
  const onPixels = await predictPixels(tf, full.model, pixels);
  const image = await imageModel(bb, full.model, 'reelset_teacher');
  const published = await serializeModel(image, { metadata: { reelset: readHeadMetadata(full.model) } });
  const onImages = await predictImages(
    published,
    preparationOf({ size: 224, blurSigma: 0, resize: 'crop', range: [0, 255] }),
    async (s, e) => images.slice(s, e),
    images.length,
  );
  // Cross-fitting: two folds over two pseudo-videos per class (frames 0-2 and 3-5 of each video).
  const videoIds = Array.from(labels, (l, i) => `v${l}-${Math.floor((i % 6) / 3)}`);
  const fit = await fitWholeTeacher({ ...common, params: { ...params, epochs: 1 }, videoIds, calibrationFolds: 2 });
  const trunkAfterFit = bb.trunk.vars.map((v) => v.dataSync().slice() as Float32Array);
  bb.dispose();
  return {
    wholeFineTuneFrom: bb.fineTuneFrom,
    wholeInputShape: bb.trunk.inputShape,
    wholeParams: bb.trunk.names.length,
    wholeChanged: changed,
    wholeLoss: full.history.map((h) => h.loss),
    wholeHyper: readHeadMetadata(full.model)?.hyper,
    wholeIdenticalResume: identicalResume,
    wholePublishedVsCheckpoint: maxAbsDiff(onImages, onPixels),
    wholePublishedOutputs: image.outputs.map((o) => o.shape),
    wholeCalibration: fit.calibration,
    wholeOutOfFoldFinite: fit.outOfFold ? Array.from(fit.outOfFold).every(Number.isFinite) : null,
    // The cross-fitting restarts every fold from the ImageNet weights: the last fit differs from the first one's end.
    wholeFoldsRestart: maxAbsDiff(trunkAfterFit[0]!, after[0]!) > 0,
    wholeFitMs: fitMs,
  };
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err) })}\n`);
  process.exit(1);
});
