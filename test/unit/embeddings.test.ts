import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { SHARED_VIDEOS } from '../helpers/services';
import { embeddingModelKey, InvalidInputError } from '../../contracts';
import { loadConfig } from '../../lib/config';
import { initTensorflow } from '../../lib/tf';
import {
  backboneOptionsFromConfig,
  cosineSimilarity,
  createFeatureExtractor,
  decodeForBackbone,
  EFFICIENTNET_LITE0,
  type FeatureExtractor,
} from '../../domain/backbone/model';
import { EmbeddingThread } from '../../domain/backbone/thread';

const VIDEOS = SHARED_VIDEOS;
const OPTIONS = backboneOptionsFromConfig(loadConfig());
jest.setTimeout(60_000);

/** Extract one PNG frame at `t` seconds with ffmpeg (output seeking: decodes from the start, so no broken frames). */
function frame(dir: string, video: string, t: number): Buffer {
  const out = path.join(dir, `${path.basename(video)}-${t}.png`);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', path.join(VIDEOS, video), '-ss', String(t), '-frames:v', '1', out]);
  return fs.readFileSync(out);
}

function row(e: Float32Array, i: number, dim: number): Float32Array {
  return e.subarray(i * dim, (i + 1) * dim);
}

describe('embedding model (EfficientNet-Lite0 pooled features, ImageNet weights)', () => {
  let dir: string;
  let model: FeatureExtractor;
  let frames: { cockatoo1: Buffer; cockatoo11: Buffer; cup: Buffer; tree: Buffer }; // cup: a coin on a table (motion.mov)

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reelset-emb-'));
    frames = {
      cockatoo1: frame(dir, 'cockatoo.mp4', 1.0),
      cockatoo11: frame(dir, 'cockatoo.mp4', 1.1),
      cup: frame(dir, 'motion.mov', 1.0),
      tree: frame(dir, 'tree.avi', 1.0),
    };
    // tfjs (wasm) in this process: the tensor-leak checks below need tfjs; ONNX Runtime is tested on the thread.
    model = await createFeatureExtractor(EFFICIENTNET_LITE0, { ...OPTIONS, runtime: 'tfjs', tfBackend: 'wasm' });
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('identifies its weights, preprocessing and runtime', async () => {
    expect(model.id.name).toBe('efficientnet_lite0');
    expect(model.id.dim).toBe(1280);
    expect(model.id.inputSize).toBe(224);
    expect(model.id.weightsSha256).toBe(EFFICIENTNET_LITE0.source.pthSha256);
    expect(model.id.runtime).toBe('tfjs');
    expect(embeddingModelKey(model.id)).toBe('efficientnet_lite0-579344248a93-224-croplanczos3m127s128-tfjs');
    const rt = await initTensorflow('wasm');
    expect(model.backend).toBe(`tfjs/${rt.backend}`);
    expect(rt.backend).toBe('wasm');
  });

  it('returns unit-norm rows of the right shape, deterministic across batch sizes', async () => {
    const imgs = [frames.cockatoo1, frames.cup, frames.tree];
    const e = await model.embed(imgs, { batchSize: 2 });
    expect(e).toBeInstanceOf(Float32Array);
    expect(e.length).toBe(3 * 1280);
    for (let i = 0; i < 3; i++) {
      const r = row(e, i, 1280);
      let n = 0;
      for (const v of r) n += v * v;
      expect(Math.sqrt(n)).toBeCloseTo(1, 4);
      expect(r.every(Number.isFinite)).toBe(true);
    }
    const single = await model.embed([frames.cup], { batchSize: 1 });
    expect(cosineSimilarity(single, row(e, 1, 1280))).toBeGreaterThan(0.9999);
    expect(await model.embed([])).toHaveLength(0);
  });

  it('puts frames 0.1 s apart closer than frames of different videos', async () => {
    const e = await model.embed([frames.cockatoo1, frames.cockatoo11, frames.cup, frames.tree]);
    const d = 1280;
    const near = cosineSimilarity(row(e, 0, d), row(e, 1, d));
    const otherCup = cosineSimilarity(row(e, 0, d), row(e, 2, d));
    const otherTree = cosineSimilarity(row(e, 0, d), row(e, 3, d));
    process.stdout.write(`cosine: 0.1 s apart ${near.toFixed(3)}, cockatoo-cup ${otherCup.toFixed(3)}, cockatoo-tree ${otherTree.toFixed(3)}\n`);
    expect(near).toBeGreaterThan(0.8);
    expect(near).toBeGreaterThan(otherCup + 0.1);
    expect(near).toBeGreaterThan(otherTree + 0.1);
  });

  it('accepts JPEG, WebP and greyscale input (3-channel, short side resized and centre-cropped)', async () => {
    const jpeg = await sharp(frames.cup).jpeg({ quality: 95 }).toBuffer();
    const webp = await sharp(frames.cup).webp({ quality: 95 }).toBuffer();
    const grey = await sharp(frames.cup).greyscale().png().toBuffer();
    const e = await model.embed([frames.cup, jpeg, webp, grey]);
    expect(cosineSimilarity(row(e, 0, 1280), row(e, 1, 1280))).toBeGreaterThan(0.97);
    expect(cosineSimilarity(row(e, 0, 1280), row(e, 2, 1280))).toBeGreaterThan(0.97);
    expect(cosineSimilarity(row(e, 0, 1280), row(e, 3, 1280))).toBeGreaterThan(0.8);
    const px = await decodeForBackbone(grey);
    expect(px.length).toBe(224 * 224 * 3);
    // A 4:1 frame is centre-cropped, not stretched: a red stripe on its left tenth is cut off,
    // a green square in its middle fills the input's middle.
    const wide = await sharp({ create: { width: 400, height: 100, channels: 3, background: { r: 0, g: 0, b: 255 } } })
      .composite([
        { input: { create: { width: 40, height: 100, channels: 3, background: { r: 255, g: 0, b: 0 } } }, left: 0, top: 0 },
        { input: { create: { width: 20, height: 20, channels: 3, background: { r: 0, g: 255, b: 0 } } }, left: 190, top: 40 },
      ])
      .png()
      .toBuffer();
    const wpx = await decodeForBackbone(wide);
    expect(wpx[112 * 224 * 3 + 2]).toBeGreaterThan(200); // blue at x=0 (red with a stretch)
    expect(wpx[112 * 224 * 3 + 112 * 3 + 1]).toBeGreaterThan(200); // green in the middle
  });

  it('has an ONNX Runtime twin (on the thread, as the embed step runs it) whose rows match within cosine 0.9999 and whose key differs', async () => {
    // ONNX Runtime runs on the embedding thread (its tensors cannot cross jest's vm realm in-process).
    const thread = new EmbeddingThread(OPTIONS);
    try {
      const ort = await thread.model('efficientnet_lite0');
      expect(ort.id.runtime).toBe('onnxruntime');
      expect(ort.backend).toMatch(/^onnxruntime\/(cpu|cuda)$/);
      expect(embeddingModelKey(ort.id)).toBe(`efficientnet_lite0-579344248a93-224-croplanczos3m127s128-ort${ort.id.onnxSha256!.slice(0, 8)}`);
      expect(embeddingModelKey(ort.id)).not.toBe(embeddingModelKey(model.id));
      expect(ort.id.weightsSha256).toBe(model.id.weightsSha256);
      const imgs = [frames.cockatoo1, frames.cup, frames.tree];
      const a = await thread.embed(
        imgs.map((b) => new Uint8Array(b)),
        8,
        'efficientnet_lite0',
      );
      const b = await model.features(await Promise.all(imgs.map((i) => decodeForBackbone(i))));
      for (let i = 0; i < 3; i++) {
        expect(cosineSimilarity(row(a.vectors, i, 1280), row(b.vectors, i, 1280))).toBeGreaterThan(0.9999);
        expect(Math.abs(a.norms[i]! - b.norms[i]!) / b.norms[i]!).toBeLessThan(1e-4);
      }
    } finally {
      await thread.close();
    }
  });

  it('throws InvalidInputError naming the bad image', async () => {
    await expect(model.embed([frames.cup, Buffer.from('not an image')])).rejects.toThrow(InvalidInputError);
    await expect(model.embed([frames.cup, Buffer.from('not an image')])).rejects.toThrow(/image 1/);
    await expect(model.embedRaw([new Uint8Array(10)])).rejects.toThrow(InvalidInputError);
    await expect(model.embed([frames.cup], { batchSize: 0 })).rejects.toThrow(InvalidInputError);
  });

  it('does not leak tensors, and reports ms/image for batches of 8', async () => {
    const { tf } = await initTensorflow('auto');
    const imgs = Array.from({ length: 8 }, (_, i) => [frames.cockatoo1, frames.cup, frames.tree, frames.cockatoo11][i % 4]!);
    await model.embed(imgs);
    const before = tf.memory().numTensors;
    const pixels = await Promise.all(imgs.map((b) => decodeForBackbone(b)));
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      await model.embedRaw(pixels, { batchSize: 8 });
      times.push((performance.now() - t0) / 8);
      expect(tf.memory().numTensors).toBe(before);
    }
    await model.embed(imgs, { batchSize: 3 });
    await expect(model.embed([Buffer.from('x')])).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
    const t0 = performance.now();
    await model.embed(imgs, { batchSize: 8 });
    const withDecode = (performance.now() - t0) / 8;
    process.stdout.write(
      `embedding on ${model.backend}: ${Math.min(...times).toFixed(1)} ms/image (forward, batch 8), ` +
        `${withDecode.toFixed(1)} ms/image including PNG decode+resize\n`,
    );
  });
});

describe('embedding thread (model off the event loop)', () => {
  let thread: EmbeddingThread;
  let images: Uint8Array[];

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reelset-embt-'));
    images = await Promise.all(
      [
        ['cockatoo.mp4', 1],
        ['motion.mov', 1],
        ['tree.avi', 1],
        ['cockatoo.mp4', 2],
      ].map(
        async ([v, t]) =>
          new Uint8Array(
            await sharp(frame(dir, v as string, t as number))
              .jpeg()
              .toBuffer(),
          ),
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
    thread = new EmbeddingThread({ ...OPTIONS, runtime: 'tfjs', tfBackend: 'wasm' });
  });
  afterAll(() => thread.close());

  it('matches the in-process model, hashes pixels and embeds exact duplicates once', async () => {
    const model = await createFeatureExtractor(EFFICIENTNET_LITE0, { ...OPTIONS, runtime: 'tfjs', tfBackend: 'wasm' });
    const info = await thread.model();
    expect(info.id).toEqual(model.id);
    expect(info.backend).toBe('tfjs/wasm');
    const r = await thread.embed([images[0]!, images[1]!, images[0]!], 8);
    expect(r.computed).toBe(2);
    expect(r.pixelHashes[0]).toBe(r.pixelHashes[2]);
    expect(r.pixelHashes[0]).not.toBe(r.pixelHashes[1]);
    const local = await model.embed([Buffer.from(images[0]!), Buffer.from(images[1]!)]);
    expect(cosineSimilarity(r.vectors.subarray(0, 1280), local.subarray(0, 1280))).toBeGreaterThan(0.9999);
    expect(cosineSimilarity(r.vectors.subarray(1280, 2560), local.subarray(1280, 2560))).toBeGreaterThan(0.9999);
    expect(r.vectors.subarray(2560)).toEqual(r.vectors.subarray(0, 1280));
    expect(r.norms[2]).toBe(r.norms[0]);
    expect(r.norms[0]).toBeGreaterThan(0.5);
    await expect(thread.embed([images[0]!, new Uint8Array([1, 2, 3])])).rejects.toThrow(InvalidInputError);
  });

  it('keeps the tensor count flat over many batches while the event loop stays free', async () => {
    await thread.embed(images, 4);
    const before = await thread.numTensors();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const started = performance.now();
    const counts: number[] = [];
    for (let b = 0; b < 12; b++) {
      const batch = await Promise.all(
        images.map(
          async (img, i) =>
            new Uint8Array(
              await sharp(img)
                .modulate({ brightness: 1 + (b * 4 + i) / 100 })
                .jpeg()
                .toBuffer(),
            ),
        ),
      );
      const r = await thread.embed(batch, 4);
      expect(r.computed).toBe(4);
      counts.push(await thread.numTensors());
    }
    clearInterval(timer);
    const ms = performance.now() - started;
    expect(counts.every((c) => c === before)).toBe(true);
    // The timer fired about as often as it would on an idle loop (forward passes ran on the thread).
    expect(ticks).toBeGreaterThan((ms / 20) * 0.5);
    process.stdout.write(
      `embedding thread: 48 frames in 12 batches, ${(ms / 48).toFixed(1)} ms/frame, tensors flat at ${before}, timer ticks ${ticks} of ~${Math.round(ms / 20)}\n`,
    );
  });
});
