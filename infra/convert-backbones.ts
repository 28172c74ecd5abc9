/**
 * Convert the nsfwjs backbones (MobileNetV2, InceptionV3) to ONNX, cut at their feature
 * layer, with a provenance file beside each: `<out>/<name>.onnx` + `<name>.onnx.json`.
 *
 * How: the nsfwjs topology and its weights, dequantised here exactly as tfjs does, go
 * to `infra/keras_to_onnx.py`, which rebuilds the Keras model in TensorFlow's Keras
 * (`tensorflow-cpu`), loads the weights by name, cuts it and converts it with `tf2onnx`
 * (opset 17), all from the pinned converter venv that `infra/install.sh` makes; the file
 * takes the RGB bytes (uint8, NHWC) and divides by 255 itself. Then the
 * ONNX file is checked against the tfjs model (wasm backend) on random images before it
 * is moved into place: max |difference| and min cosine are recorded, and a cosine under
 * 0.9999 fails the conversion.
 *
 * Idempotent: a backbone whose provenance already names the installed weights, the
 * pinned converter and a file with the recorded sha256 is skipped (`--force` redoes it).
 *
 * Usage: `npx tsx infra/convert-backbones.ts [--out DIR] [--python PATH] [--backbones mobilenet_v2,inception_v3] [--force]`
 * (defaults: `$REELSET_MODELS_DIR`, `$REELSET_TOOLS_DIR/convert-venv/bin/python`, both).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadConfig } from '../lib/config';
import { sha256File } from '../lib/hash';
import { BACKBONES, dequantizeNsfwjs, readNsfwjsModel, type BackboneName, type BackboneSpec } from '../lib/backbone/nsfwjs';
import type { OnnxProvenance } from '../lib/backbone/onnx';
import { loadTfjsBackbone, tfjsFeatures } from '../lib/backbone/tfjs-backbone';
import { mulberry32 } from '../lib/rng';
import { initTensorflow } from '../lib/tf';

/** The ONNX opset written (tf2onnx 1.16.1's default is 15; 17 is what onnxruntime-node 1.30 runs best and RUNTIMES.md checked). */
const OPSET = 17;
/** Cosine below which a converted file is refused. */
const MIN_COSINE = 0.9999;
const CHECK_IMAGES = 2;

function log(msg: string): void {
  process.stdout.write(`[convert] ${msg}\n`);
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return d / Math.sqrt(na * nb);
}

async function upToDate(spec: BackboneSpec, out: string, weightsSha256: string, pins: Record<string, string>): Promise<boolean> {
  const file = path.join(out, `${spec.name}.onnx`);
  const meta = `${file}.json`;
  if (!existsSync(file) || !existsSync(meta)) return false;
  try {
    const p = JSON.parse(readFileSync(meta, 'utf8')) as OnnxProvenance;
    const samePins = Object.entries(pins).every(([k, v]) => (p.converter as unknown as Record<string, string>)[k] === v);
    // `input.name` marks the file's layout (`pixels`: uint8 bytes in, scaled in the graph).
    return p.weightsSha256 === weightsSha256 && samePins && p.converter.opset === OPSET && p.input?.name === 'pixels' && (await sha256File(file)) === p.onnxSha256;
  } catch {
    return false;
  }
}

/** Versions of the packages in the converter venv (what the provenance must name). */
function venvVersions(python: string): Record<string, string> {
  const code = 'import importlib.metadata as m, json; print(json.dumps({k: m.version(p) for k, p in [("tensorflow","tensorflow-cpu"),("tf2onnx","tf2onnx"),("onnx","onnx"),("numpy","numpy")]}))';
  return JSON.parse(execFileSync(python, ['-c', code], { encoding: 'utf8' })) as Record<string, string>;
}

async function convert(spec: BackboneSpec, out: string, python: string, force: boolean): Promise<void> {
  const started = Date.now();
  const source = readNsfwjsModel(spec);
  const pins = venvVersions(python);
  if (!force && (await upToDate(spec, out, source.weightsSha256, pins))) {
    log(`${spec.name}: up to date (${path.join(out, `${spec.name}.onnx`)})`);
    return;
  }
  const work = mkdtempSync(path.join(os.tmpdir(), `reelset-convert-${spec.name}-`));
  try {
    const { weightSpecs, weights } = dequantizeNsfwjs(source);
    writeFileSync(path.join(work, 'topology.json'), JSON.stringify(source.modelTopology));
    writeFileSync(path.join(work, 'weights.json'), JSON.stringify(weightSpecs));
    writeFileSync(path.join(work, 'weights.f32'), Buffer.from(weights.buffer, weights.byteOffset, weights.byteLength));
    const tmpOnnx = path.join(work, `${spec.name}.onnx`);
    log(`${spec.name}: Keras -> ONNX with ${python} (tensorflow ${pins['tensorflow']}, tf2onnx ${pins['tf2onnx']}, opset ${OPSET})`);
    const script = path.join(__dirname, 'keras_to_onnx.py');
    const stdout = execFileSync(python, [script, work, spec.featureLayer, String(spec.inputSize), String(OPSET), tmpOnnx], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', CUDA_VISIBLE_DEVICES: '' },
    });
    const versions = JSON.parse(stdout.trim().split('\n').at(-1)!) as { python: string; tensorflow: string; tf2onnx: string; onnx: string; numpy: string };

    // Check against tfjs on random images before the file goes into place.
    const { tf } = await initTensorflow('wasm');
    const net = await loadTfjsBackbone(tf, spec);
    const rng = mulberry32(12345);
    const per = spec.inputSize * spec.inputSize * 3;
    const pixels = Array.from({ length: CHECK_IMAGES }, () => Uint8Array.from({ length: per }, () => Math.floor(rng() * 256)));
    const ref = await tfjsFeatures(tf, net.features, spec, pixels);
    net.full.dispose();
    const session = await ort.InferenceSession.create(tmpOnnx, { executionProviders: ['cpu'] });
    const input = new Uint8Array(CHECK_IMAGES * per);
    pixels.forEach((p, i) => input.set(p, i * per));
    const res = await session.run({ pixels: new ort.Tensor('uint8', input, [CHECK_IMAGES, spec.inputSize, spec.inputSize, 3]) });
    const got = res['features']!.data as Float32Array;
    await session.release();
    let maxAbsDiff = 0;
    let minCosine = 1;
    for (let i = 0; i < CHECK_IMAGES; i++) {
      const a = ref.subarray(i * spec.dim, (i + 1) * spec.dim);
      const b = got.subarray(i * spec.dim, (i + 1) * spec.dim);
      for (let k = 0; k < spec.dim; k++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[k]! - b[k]!));
      minCosine = Math.min(minCosine, cosine(a, b));
    }
    if (!(minCosine >= MIN_COSINE)) throw new Error(`${spec.name}: ONNX and tfjs features differ (cosine ${minCosine}, max |diff| ${maxAbsDiff})`);

    const onnxSha256 = await sha256File(tmpOnnx);
    const provenance: OnnxProvenance = {
      backbone: spec.name,
      nsfwjsVersion: source.nsfwjsVersion,
      weightsSha256: source.weightsSha256,
      featureLayer: spec.featureLayer,
      input: { name: 'pixels', size: spec.inputSize },
      output: { name: 'features', dim: spec.dim },
      onnxSha256,
      onnxBytes: statSync(tmpOnnx).size,
      converter: { scripts: ['infra/convert-backbones.ts', 'infra/keras_to_onnx.py'], ...versions, opset: OPSET },
      check: { images: CHECK_IMAGES, maxAbsDiff, minCosine, against: `tfjs ${tf.version.tfjs} wasm, random pixels` },
      seconds: Math.round((Date.now() - started) / 100) / 10,
      createdAt: new Date().toISOString(),
    };
    mkdirSync(out, { recursive: true });
    const dest = path.join(out, `${spec.name}.onnx`);
    renameOrCopy(tmpOnnx, dest);
    writeFileSync(`${dest}.json`, `${JSON.stringify(provenance, null, 2)}\n`);
    log(`${spec.name}: ${dest} (${(provenance.onnxBytes / 1e6).toFixed(1)} MB, max |diff| ${maxAbsDiff.toExponential(2)}, cosine ${minCosine.toFixed(8)}, ${provenance.seconds} s)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function renameOrCopy(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    writeFileSync(`${to}.tmp`, readFileSync(from));
    renameSync(`${to}.tmp`, to);
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: config.REELSET_MODELS_DIR },
      python: { type: 'string', default: path.join(config.REELSET_TOOLS_DIR, 'convert-venv', 'bin', 'python') },
      backbones: { type: 'string', default: 'mobilenet_v2,inception_v3' },
      force: { type: 'boolean', default: false },
    },
  });
  if (!existsSync(values.python!)) throw new Error(`converter python ${values.python} not found: run infra/install.sh`);
  for (const name of values.backbones!.split(',')) {
    const spec = BACKBONES[name as BackboneName];
    if (!spec) throw new Error(`unknown backbone ${name} (known: ${Object.keys(BACKBONES).join(', ')})`);
    await convert(spec, values.out!, values.python!, values.force!);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[convert] ERROR: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
