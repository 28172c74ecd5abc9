/**
 * Model (de)serialisation to two plain values (a JSON string and a byte buffer) that can
 * be stored in S3 or passed between activities, and training checkpoints (the same format
 * plus the optimiser state).
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError } from '../../contracts';
import { initTensorflow } from '../../lib/tf';

/** File name of the weights beside a `model.json`. */
export const WEIGHTS_FILE = 'weights.bin';

/**
 * A serialised tfjs layers model: a standard tfjs `model.json` and its one weights file.
 *
 * - `modelJson`: JSON of `{ format: 'layers-model', generatedBy, convertedBy, modelTopology,
 *   weightsManifest: [{ paths: ['weights.bin'], weights: [specs] }], userDefinedMetadata? }`,
 *   what `tf.loadLayersModel('file://.../model.json')` (tfjs-node) and the `tensorflowjs`
 *   Python converter read. (Earlier versions wrote `weightSpecs` inline; still read.)
 * - `weights`: the weight bytes, concatenated in spec order (little-endian float32 unless
 *   a spec says otherwise). Specs with `group: 'optimizer'` (checkpoints only) come after
 *   the model's own weights; tfjs separates them when loading.
 */
export interface SerializedModel {
  modelJson: string;
  weights: Buffer;
}

interface StoredModelJson {
  format: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: object;
  weightsManifest?: { paths: string[]; weights: TfModule.io.WeightsManifestEntry[] }[];
  /** Older layout: the specs inline. */
  weightSpecs?: TfModule.io.WeightsManifestEntry[];
  userDefinedMetadata?: Record<string, unknown>;
}

/** The weight specs of a stored model.json, whichever layout. */
function specsOf(json: StoredModelJson): TfModule.io.WeightsManifestEntry[] {
  return json.weightSpecs ?? (json.weightsManifest ?? []).flatMap((g) => g.weights);
}

/** Options of {@link serializeModel}. */
export interface SerializeOptions {
  /** Extra tensors stored with `group: 'optimizer'` (e.g. Adam moments), readable with {@link readOptimizerState}. */
  optimizerState?: { name: string; tensor: TfModule.Tensor }[];
  /** JSON-serialisable metadata stored as `userDefinedMetadata` (read with {@link readModelMetadata}). */
  metadata?: Record<string, unknown>;
}

/**
 * Serialise a layers model (topology + weights) with `model.save(tf.io.withSaveHandler(...))`.
 *
 * @param model any tfjs LayersModel; not modified or disposed.
 * @param options optional optimiser tensors and metadata to store alongside.
 * @returns the model as a JSON string and a weight buffer; see {@link SerializedModel}.
 */
export async function serializeModel(model: TfModule.LayersModel, options: SerializeOptions = {}): Promise<SerializedModel> {
  const { tf } = await initTensorflow();
  let artifacts: TfModule.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
  );
  if (!artifacts?.modelTopology || !artifacts.weightSpecs || artifacts.weightData === undefined) {
    throw new Error('tfjs save handler received incomplete model artifacts');
  }
  const parts: ArrayBuffer[] = [tf.io.CompositeArrayBuffer.join(artifacts.weightData)];
  const specs = [...artifacts.weightSpecs];
  if (options.optimizerState && options.optimizerState.length > 0) {
    const enc = await tf.io.encodeWeights(options.optimizerState, 'optimizer');
    parts.push(enc.data);
    specs.push(...enc.specs);
  }
  const json: StoredModelJson = {
    format: 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: artifacts.modelTopology as object,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: specs }],
  };
  if (options.metadata) json.userDefinedMetadata = options.metadata;
  return {
    modelJson: JSON.stringify(json),
    weights: Buffer.concat(parts.map((p) => new Uint8Array(p))),
  };
}

function parse(s: SerializedModel): StoredModelJson {
  let json: StoredModelJson;
  try {
    json = JSON.parse(s.modelJson) as StoredModelJson;
  } catch (err) {
    throw new InvalidInputError('serialized model: modelJson is not JSON', { cause: err });
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || !(Array.isArray(json.weightSpecs) || Array.isArray(json.weightsManifest))) {
    throw new InvalidInputError('serialized model: modelJson lacks modelTopology or weightsManifest');
  }
  return json;
}

/** Copy the bytes into an ArrayBuffer of this realm (tfjs checks `instanceof ArrayBuffer`). */
function ownArrayBuffer(b: Uint8Array): ArrayBuffer {
  return new Uint8Array(b).buffer as ArrayBuffer;
}

/**
 * Load a model serialised by {@link serializeModel} with `tf.loadLayersModel(tf.io.fromMemory(...))`.
 * Optimiser tensors, if any, are ignored. The caller owns (and must `dispose()`) the model.
 *
 * @throws InvalidInputError when the JSON is malformed or the weights do not match the topology.
 */
export async function deserializeModel(s: SerializedModel): Promise<TfModule.LayersModel> {
  const { tf } = await initTensorflow();
  const json = parse(s);
  try {
    return await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: specsOf(json),
        weightData: ownArrayBuffer(s.weights),
        format: json.format,
        generatedBy: json.generatedBy,
        userDefinedMetadata: json.userDefinedMetadata,
      }),
    );
  } catch (err) {
    throw new InvalidInputError(`serialized model cannot be loaded: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/** The `userDefinedMetadata` stored with a serialised model, or undefined when there is none. */
export function readModelMetadata(s: SerializedModel): Record<string, unknown> | undefined {
  return parse(s).userDefinedMetadata;
}

/**
 * The optimiser tensors stored in a checkpoint (specs with `group: 'optimizer'`), by name.
 * Empty when there are none. The caller owns (and must dispose) the tensors.
 */
export async function readOptimizerState(s: SerializedModel): Promise<TfModule.NamedTensorMap> {
  const { tf } = await initTensorflow();
  const specs = specsOf(parse(s));
  if (!specs.some((w) => w.group === 'optimizer')) return {};
  const all = tf.io.decodeWeights(ownArrayBuffer(s.weights), specs);
  const out: TfModule.NamedTensorMap = {};
  for (const spec of specs) {
    const t = all[spec.name];
    if (!t) continue;
    if (spec.group === 'optimizer') out[spec.name] = t;
    else t.dispose();
  }
  return out;
}
