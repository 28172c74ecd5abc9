/**
 * A backbone in TensorFlow.js (EfficientNet-Lite rebuilt from its converted weights, see
 * `domain/backbone/tfjs-backbone.ts`), split for fine-tuning into a frozen bottom (the input
 * to the output of the second-to-last block) and a trainable top (the last
 * inverted-residual block and the 1 x 1 head convolution to 1280 channels, with their
 * batch normalisations, then the pooling to `features`); and the published image model:
 * the whole backbone and a head as one layers model.
 *
 * Fine-tuning keeps batch-normalisation statistics frozen (inference mode) and trains the
 * top's kernels and the batch normalisations' scale and offset: the usual way to adapt
 * the last layers of a pretrained network on a small dataset. It needs convolution
 * gradients (`Conv2DBackpropFilter`, `DepthwiseConv2dNativeBackpropFilter`), which the
 * tfjs-node backends have and wasm has not.
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError, type BackboneName } from '../../contracts';
import { BACKBONES, readBackboneWeights, requireBackboneFiles } from '../../domain/backbone/backbones';
import { modelsDirsOf } from '../../domain/backbone/model';
import { blockPrefix, buildTfjsBackbone, FEATURES_LAYER, IMAGENET_LOGITS_LAYER, NORMALISE_LAYER, type TfjsBackbone } from '../../domain/backbone/tfjs-backbone';
import type { Tf } from '../../lib/tf';
import { headOn, readHeadMetadata, toVariable, type HeadArch, type Params, type Trunk } from './head-model';
import { deserializeModel, type SerializedModel } from './serialize';

/** Whether a tfjs backend can train convolutions (the trunk): the native TensorFlow backends can, wasm and cpu cannot here (wasm has no Conv2DBackpropFilter). */
export function hasConvolutionGradients(backend: string): boolean {
  return backend === 'tensorflow';
}

/** A backbone split for fine-tuning. Dispose with {@link SplitBackbone.dispose}. */
export interface SplitBackbone {
  tf: Tf;
  name: BackboneName;
  net: TfjsBackbone;
  /** First trained layer (`block<last>_expand_conv`, or `stem_conv` for the whole backbone), recorded in `artifact.json` as `fineTunedFrom`. */
  fineTuneFrom: string;
  /** Input pixels to the last frozen layer's output: `[n, S, S, 3] -> [n, 7, 7, C]` (S 224 for Lite0: C 192); the identity for the whole backbone. */
  bottom: TfModule.LayersModel;
  /** The trainable top as a {@link Trunk}. */
  trunk: Trunk;
  dispose(): void;
}

/** Options of {@link loadSplitBackbone}. */
export interface SplitOptions {
  /** Folders with the converted files (`REELSET_MODELS_DIR`). */
  modelsDirs?: string[];
}

/** Where {@link loadSplitBackbone} cuts: before the last block (the student's top) or before the first layer (the whole backbone: the teacher's fine-tuning). */
export type SplitAt = 'last-block' | 'whole';

/** Names of the layers a layer reads (its first node: the backbone's own graph). */
function inboundOf(l: TfModule.layers.Layer): string[] {
  return (l.inboundNodes[0]?.inboundLayers ?? []).map((x) => x.name);
}

/**
 * Run `layers` (a topologically ordered part of a layers model's graph) on a new input:
 * the layer named `cut` stands for `x`, every other layer reads what its inbound layers
 * gave (a residual `add` reads two). Works on symbolic tensors (building a model) and on
 * concrete ones (training, with `kwargs` `{ training: false }`).
 *
 * @returns the last layer's output.
 */
function runGraph<T extends TfModule.Tensor | TfModule.SymbolicTensor>(
  layers: TfModule.layers.Layer[],
  cut: string,
  x: T,
  kwargs?: Record<string, unknown>,
): T {
  const out = new Map<string, T>([[cut, x]]);
  let last = x;
  for (const l of layers) {
    const ins = inboundOf(l).map((n) => out.get(n)!);
    last = l.apply((ins.length === 1 ? ins[0]! : ins) as TfModule.Tensor | TfModule.Tensor[], kwargs) as T;
    out.set(l.name, last);
  }
  return last;
}

/**
 * Build a backbone in tfjs from its converted weights and split it into a frozen bottom
 * and a trainable top: before its last block (`last-block`, the default: the student's
 * fine-tuning) or before its first layer (`whole`: every convolution and batch
 * normalisation trains, the teacher's whole-backbone fine-tuning; the bottom is then the
 * identity and the top's input the pixels).
 *
 * @throws MissingArtifactError when the backbone's converted files are not there.
 * @throws Error when a top layer reads a layer below the cut other than the cut itself.
 */
export async function loadSplitBackbone(tf: Tf, name: BackboneName, opts: SplitOptions & { at?: SplitAt } = {}): Promise<SplitBackbone> {
  const spec = BACKBONES[name];
  const files = requireBackboneFiles(spec, modelsDirsOf({ modelsDirs: opts.modelsDirs ?? [] }));
  const net = buildTfjsBackbone(tf, readBackboneWeights(spec, files));
  const full = net.full;
  const layers = full.layers;
  let fineTuneFrom: string;
  if (opts.at === 'whole') {
    fineTuneFrom = layers.find((l) => l.getClassName() !== 'InputLayer' && l.name !== NORMALISE_LAYER)!.name;
  } else {
    const lastBlock = net.weights.index.architecture.blocks.at(-1)!;
    fineTuneFrom = `${blockPrefix(lastBlock.index)}_${lastBlock.expandRatio !== 1 ? 'expand' : 'dw'}_conv`;
  }
  // The whole backbone keeps its input normalisation in the top (it has no weights).
  const first = opts.at === 'whole' ? NORMALISE_LAYER : fineTuneFrom;
  const from = layers.findIndex((l) => l.name === first);
  const to = layers.findIndex((l) => l.name === FEATURES_LAYER);
  if (from < 0 || to < from) throw new Error(`${name}: no ${first} before ${FEATURES_LAYER}`);
  const top = layers.slice(from, to + 1);
  const cutLayer = inboundOf(top[0]!);
  if (cutLayer.length !== 1) throw new Error(`${name}: ${first} has ${cutLayer.length} inputs`);
  const known = new Set([cutLayer[0]!]);
  for (const l of top) {
    const bad = inboundOf(l).find((n) => !known.has(n));
    if (bad) throw new Error(`${name}: ${l.name} reads ${bad}, below the cut before ${first}`);
    known.add(l.name);
  }
  const cut = full.getLayer(cutLayer[0]!);
  const cutOut = (cut.getClassName() === 'InputLayer' ? full.inputs[0]! : cut.output) as TfModule.SymbolicTensor;
  const bottom = tf.model({ inputs: full.inputs, outputs: cutOut });
  const inputShape = cutOut.shape.slice(1) as number[];
  const trainable = top.flatMap((l) => l.trainableWeights.map((w) => ({ layer: l.name, w })));
  const trunk: Trunk = {
    inputShape,
    names: trainable.map(({ w }) => w.originalName),
    vars: trainable.map(({ w }) => w.read() as TfModule.Variable),
    build: (x) => runGraph(top, cut.name, x),
    apply: (x) => runGraph(top, cut.name, x, { training: false }) as TfModule.Tensor2D,
    restore(src) {
      for (const l of top) {
        let from: TfModule.layers.Layer;
        try {
          from = src.getLayer(l.name);
        } catch {
          throw new InvalidInputError(`checkpoint has no layer ${l.name} of the ${name} backbone top`);
        }
        l.setWeights(from.getWeights());
      }
    },
  };
  return { tf, name, net, fineTuneFrom, bottom, trunk, dispose: () => full.dispose() };
}

/**
 * Inputs of the trainable top for decoded frames (`S * S * 3` RGB bytes each): the frozen
 * bottom's activations, `n * prod(trunk.inputShape)` floats.
 *
 * @param onBatch called after each batch (heartbeat; the event loop is yielded to between batches).
 */
export async function trunkInputs(bb: SplitBackbone, pixels: Uint8Array[], batchSize = 16, onBatch?: (done: number) => void): Promise<Float32Array> {
  const { tf } = bb;
  const s = bb.net.weights.index.architecture.imageSize;
  const per = s * s * 3;
  const rowSize = bb.trunk.inputShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(pixels.length * rowSize);
  for (let start = 0; start < pixels.length; start += batchSize) {
    const batch = pixels.slice(start, start + batchSize);
    const input = new Float32Array(batch.length * per);
    batch.forEach((p, i) => input.set(p, i * per));
    const y = tf.tidy(() => bb.bottom.predict(tf.tensor4d(input, [batch.length, s, s, 3])) as TfModule.Tensor);
    try {
      out.set((await y.data()) as Float32Array, start * rowSize);
    } finally {
      y.dispose();
    }
    onBatch?.(start + batch.length);
    await new Promise((r) => setImmediate(r));
  }
  return out;
}

/**
 * The published image model: the backbone and a head as one layers model,
 * `[n, S, S, 3]` (RGB pixel values in [0, 255], prepared as `decodeForBackbone`) to
 * `[probabilities [n, numClasses], ImageNet logits [n, 1000]]`: output 0 is the head's
 * (`probs`), output 1 the backbone's own ImageNet classifier (`imagenet_logits`, for the
 * out-of-scope gate). The head's weights come from `head` (a head on features, or a
 * trunk-and-head model whose top layers, when present, replace the backbone's).
 *
 * @returns the model; it shares the backbone's layers, so dispose `bb` (not the model) when done.
 * @throws InvalidInputError when `head` has no reelset head metadata.
 */
export async function imageModel(bb: SplitBackbone, head: SerializedModel, name: string): Promise<TfModule.LayersModel> {
  const { tf } = bb;
  const meta = readHeadMetadata(head);
  if (!meta) throw new InvalidInputError(`${name}: model has no reelset head metadata`);
  const arch: HeadArch = meta.arch;
  const net = await deserializeModel(head);
  let params: Params;
  try {
    if (net.layers.some((l) => l.name === bb.fineTuneFrom)) bb.trunk.restore(net);
    const names = arch.hidden > 0 ? ['hidden', 'logits'] : ['logits'];
    const vars = names.flatMap((n) =>
      net
        .getLayer(n)
        .getWeights()
        .map((t) => toVariable(tf, tf.tensor(t.dataSync() as Float32Array, t.shape), false)),
    );
    params = { names: names.flatMap((n) => [`${n}/kernel`, `${n}/bias`]), vars };
  } finally {
    net.dispose();
  }
  try {
    const full = bb.net.full;
    // Outputs of the backbone's own graph (node 0): the top layers are applied again in checkpoint models.
    const features = full.getLayer(FEATURES_LAYER).getOutputAt(0) as TfModule.SymbolicTensor;
    const imagenet = full.getLayer(IMAGENET_LOGITS_LAYER).getOutputAt(0) as TfModule.SymbolicTensor;
    return headOn(tf, arch, params, full.inputs, features, name, [imagenet]);
  } finally {
    tf.dispose(params.vars);
  }
}
