/**
 * A backbone in TensorFlow.js (EfficientNet-Lite rebuilt from its converted weights, see
 * `lib/backbone/tfjs-backbone.ts`), split for fine-tuning into a frozen bottom (the input
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
import { readBackboneWeights, requireBackboneFiles, BACKBONES } from '../../lib/backbone/backbones';
import { modelsDirsOf } from '../../lib/backbone/model';
import { blockPrefix, buildTfjsBackbone, FEATURES_LAYER, IMAGENET_LOGITS_LAYER, type TfjsBackbone } from '../../lib/backbone/tfjs-backbone';
import type { Tf } from '../../lib/tf';
import { deserializeModel, type SerializedModel } from './serialize';
import { headOn, readHeadMetadata, toVariable, type HeadArch, type Params, type Trunk } from './head-model';

/** Whether a tfjs backend can train convolutions (the trunk): the native TensorFlow backends can, wasm and cpu cannot here (wasm has no Conv2DBackpropFilter). */
export function hasConvolutionGradients(backend: string): boolean {
  return backend === 'tensorflow';
}

/** A backbone split for fine-tuning. Dispose with {@link SplitBackbone.dispose}. */
export interface SplitBackbone {
  tf: Tf;
  name: BackboneName;
  net: TfjsBackbone;
  /** First layer of the trainable top (`block<last>_expand_conv`), recorded in `artifact.json` as `fineTunedFrom`. */
  fineTuneFrom: string;
  /** Input pixels to the last frozen layer's output: `[n, S, S, 3] -> [n, 7, 7, C]` (S 224 for Lite0: C 192). */
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

/**
 * Build a backbone in tfjs from its converted weights and split it before its last block.
 *
 * @throws MissingArtifactError when the backbone's converted files are not there.
 * @throws Error when the layers after the cut are not a simple chain (another architecture).
 */
export async function loadSplitBackbone(tf: Tf, name: BackboneName, opts: SplitOptions = {}): Promise<SplitBackbone> {
  const spec = BACKBONES[name];
  const files = requireBackboneFiles(spec, modelsDirsOf({ modelsDirs: opts.modelsDirs ?? [] }));
  const net = buildTfjsBackbone(tf, readBackboneWeights(spec, files));
  const full = net.full;
  const lastBlock = net.weights.index.architecture.blocks.at(-1)!;
  const fineTuneFrom = `${blockPrefix(lastBlock.index)}_${lastBlock.expandRatio !== 1 ? 'expand' : 'dw'}_conv`;
  const layers = full.layers;
  const from = layers.findIndex((l) => l.name === fineTuneFrom);
  const to = layers.findIndex((l) => l.name === FEATURES_LAYER);
  if (from < 0 || to < from) throw new Error(`${name}: no ${fineTuneFrom} before ${FEATURES_LAYER}`);
  const top = layers.slice(from, to + 1);
  // Each top layer must read exactly the previous one's output (a chain), the first one the cut.
  const inboundOf = (l: TfModule.layers.Layer) => (l.inboundNodes[0]?.inboundLayers ?? []).map((x) => x.name);
  const cutLayer = inboundOf(top[0]!);
  if (cutLayer.length !== 1) throw new Error(`${name}: ${fineTuneFrom} has ${cutLayer.length} inputs`);
  top.forEach((l, i) => {
    if (i > 0 && (inboundOf(l).length !== 1 || inboundOf(l)[0] !== top[i - 1]!.name)) {
      throw new Error(`${name}: the layers from ${fineTuneFrom} are not a chain at ${l.name}`);
    }
  });
  const cut = full.getLayer(cutLayer[0]!);
  const bottom = tf.model({ inputs: full.inputs, outputs: cut.output as TfModule.SymbolicTensor });
  const inputShape = (cut.output as TfModule.SymbolicTensor).shape.slice(1) as number[];
  const trainable = top.flatMap((l) => l.trainableWeights.map((w) => ({ layer: l.name, w })));
  const trunk: Trunk = {
    inputShape,
    names: trainable.map(({ w }) => w.originalName),
    vars: trainable.map(({ w }) => w.read() as TfModule.Variable),
    layers: top,
    apply(x) {
      let h: TfModule.Tensor = x;
      for (const l of top) h = l.apply(h, { training: false }) as TfModule.Tensor;
      return h as TfModule.Tensor2D;
    },
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
    const vars = names.flatMap((n) => net.getLayer(n).getWeights().map((t) => toVariable(tf, tf.tensor(t.dataSync() as Float32Array, t.shape), false)));
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
