/**
 * The ONNX backbones against the tfjs models they were converted from, on real frames of
 * the repository's sample videos: MobileNetV2 (committed in backbones/) and InceptionV3
 * (converted by infra/install.sh into REELSET_MODELS_DIR), both with ONNX Runtime on the
 * embedding thread as the pipeline runs them, and the tfjs wasm fallback forced.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { embeddingModelKey } from '../../contracts';
import { loadConfig } from '../../lib/config';
import { sha256File } from '../../lib/hash';
import { backboneOptionsFromConfig, cosineSimilarity, INCEPTION_V3, MOBILENET_V2, type BackboneSpec } from '../../lib/backbone/model';
import { readNsfwjsModel } from '../../lib/backbone/nsfwjs';
import { COMMITTED_BACKBONES_DIR, findOnnxBackbone, openOnnxSession, type OnnxProvenance } from '../../lib/backbone/onnx';
import { EmbeddingThread } from '../../lib/backbone/thread';

jest.setTimeout(180_000);

const VIDEOS = path.resolve(__dirname, '../../samples/videos');
const config = loadConfig();
const OPTIONS = backboneOptionsFromConfig(config);

function frame(video: string, t: number): Uint8Array {
  return new Uint8Array(execFileSync('ffmpeg', ['-v', 'error', '-ss', String(t), '-i', path.join(VIDEOS, video), '-frames:v', '1', '-vf', 'scale=-2:256', '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '4', '-']));
}

const images = [frame('cockatoo.mp4', 1), frame('tree.avi', 1), frame('motion.mov', 1), frame('Megamind.avi', 2)];

describe.each([
  ['MobileNetV2', MOBILENET_V2],
  ['InceptionV3', INCEPTION_V3],
] as Array<[string, BackboneSpec]>)('%s on ONNX Runtime', (_name, spec) => {
  let ort: EmbeddingThread;
  let tfjs: EmbeddingThread;
  beforeAll(() => {
    ort = new EmbeddingThread({ ...OPTIONS, runtime: 'onnxruntime' });
    tfjs = new EmbeddingThread({ ...OPTIONS, runtime: 'tfjs', tfBackend: 'wasm' });
  });
  afterAll(async () => {
    await ort.close();
    await tfjs.close();
  });

  it('has an ONNX file whose provenance names the installed nsfwjs weights and converter', async () => {
    const src = readNsfwjsModel(spec);
    const found = findOnnxBackbone(spec, [config.REELSET_MODELS_DIR, COMMITTED_BACKBONES_DIR], src.weightsSha256);
    if ('reasons' in found) throw new Error(`no ONNX file for ${spec.name} (run infra/install.sh): ${found.reasons.join('; ')}`);
    const p = found.provenance;
    expect(p).toMatchObject({ backbone: spec.name, nsfwjsVersion: src.nsfwjsVersion, weightsSha256: src.weightsSha256, featureLayer: 'flatten_1' });
    expect(p.input).toEqual({ name: 'pixels', size: spec.inputSize });
    expect(p.output).toEqual({ name: 'features', dim: spec.dim });
    expect(p.converter).toMatchObject({ tensorflow: expect.stringMatching(/^2\./), tf2onnx: expect.any(String), onnx: expect.any(String), opset: 17 });
    expect(await sha256File(found.file)).toBe(p.onnxSha256);
    expect(p.check.minCosine).toBeGreaterThanOrEqual(0.9999);
  });

  it('gives features within cosine 0.9999 of the tfjs model on real frames, under another model key', async () => {
    const [a, b] = [await ort.model(spec.name), await tfjs.model(spec.name)];
    expect(a.id.runtime).toBe('onnxruntime');
    expect(a.backend).toMatch(/^onnxruntime\//);
    expect(b.id.runtime).toBe('tfjs');
    expect(b.backend).toBe('tfjs/wasm');
    expect(embeddingModelKey(a.id)).not.toBe(embeddingModelKey(b.id));
    expect({ ...a.id, runtime: 'x', onnxSha256: undefined }).toEqual({ ...b.id, runtime: 'x', onnxSha256: undefined });
    const ra = await ort.embed(images, 4, spec.name);
    const rb = await tfjs.embed(images, 4, spec.name);
    const d = spec.dim;
    const cos: number[] = [];
    for (let i = 0; i < images.length; i++) {
      cos.push(cosineSimilarity(ra.vectors.subarray(i * d, (i + 1) * d), rb.vectors.subarray(i * d, (i + 1) * d)));
      expect(Math.abs(ra.norms[i]! - rb.norms[i]!) / rb.norms[i]!).toBeLessThan(1e-4);
    }
    process.stdout.write(`${spec.name}: ONNX Runtime vs tfjs wasm on ${images.length} frames, min cosine 1 - ${(1 - Math.min(...cos)).toExponential(1)}\n`);
    for (const c of cos) expect(c).toBeGreaterThanOrEqual(0.9999);
    expect(ra.pixelHashes).toEqual(rb.pixelHashes);
  });

  it('CutMixes pairs at its own input size on the thread', async () => {
    const r = await ort.cutmix([[images[0]!, images[1]!], [images[2]!, images[3]!]], [1, 2], 2, spec.name);
    expect(r.vectors.length).toBe(2 * spec.dim);
    expect(r.norms.every((n) => n > 0)).toBe(true);
    expect(Array.from(r.lambdas).every((l) => l >= 0 && l <= 1)).toBe(true);
  });
});

describe('ONNX files are used only when their provenance fits', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reelset-onnx-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const src = readNsfwjsModel(MOBILENET_V2);
  const committed = path.join(COMMITTED_BACKBONES_DIR, 'mobilenet_v2.onnx');
  const provenance = JSON.parse(fs.readFileSync(`${committed}.json`, 'utf8')) as OnnxProvenance;

  it('passes over a file converted from other weights, saying why', () => {
    fs.copyFileSync(committed, path.join(dir, 'mobilenet_v2.onnx'));
    fs.writeFileSync(path.join(dir, 'mobilenet_v2.onnx.json'), JSON.stringify({ ...provenance, weightsSha256: '0'.repeat(64) }));
    const found = findOnnxBackbone(MOBILENET_V2, [dir], src.weightsSha256);
    expect('reasons' in found && found.reasons[0]).toMatch(/converted from nsfwjs weights 000000000000, installed/);
    const fallback = findOnnxBackbone(MOBILENET_V2, [dir, COMMITTED_BACKBONES_DIR], src.weightsSha256);
    expect('file' in fallback && fallback.file).toBe(committed);
  });

  it('refuses a file whose bytes differ from its provenance', async () => {
    const bad = path.join(dir, 'changed.onnx');
    fs.writeFileSync(bad, Buffer.concat([fs.readFileSync(committed), Buffer.from([0])]));
    await expect(openOnnxSession({ file: bad, provenance }, { provider: 'cpu', threads: 1 })).rejects.toThrow(/differs from its provenance/);
  });
});
