/**
 * The student's backbone: nsfwjs's MobileNetV2 in TensorFlow.js, split for fine-tuning
 * into a frozen bottom (input to `block_15_add`, 7 x 7 x 160) and a trainable top (the
 * last inverted-residual block `block_16_*` and the 1 x 1 `Conv_1` to 1280 channels, with
 * their batch normalisations, then the pooling to `flatten_1`), and the published
 * student: the whole backbone and the head as one image model.
 *
 * Fine-tuning keeps batch-normalisation statistics frozen (inference mode) and trains the
 * top's kernels and the batch normalisations' scale and offset: the usual way to adapt
 * the last layers of a pretrained network on a small dataset. It needs convolution
 * gradients (`Conv2DBackpropFilter`, `DepthwiseConv2dNativeBackpropFilter`), which the
 * tfjs-node backend has and wasm has not.
 */
import type * as TfModule from '@tensorflow/tfjs';
import { InvalidInputError } from '../../contracts';
import { loadTfjsBackbone, toUnitFloats, type TfjsBackbone } from '../../lib/backbone/tfjs-backbone';
import { MOBILENET_V2 } from '../../lib/backbone/nsfwjs';
import type { Tf } from '../../lib/tf';
import { deserializeModel, type SerializedModel } from './serialize';
import { headOn, readHeadMetadata, toVariable, type HeadArch, type Params, type Trunk } from './head-model';

/** First layer of the trainable top. */
export const FINE_TUNE_FROM = 'block_16_expand';

/** Whether a tfjs backend can train convolutions (the trunk): the native TensorFlow backends can, wasm and cpu cannot here (wasm has no Conv2DBackpropFilter). */
export function hasConvolutionGradients(backend: string): boolean {
  return backend === 'tensorflow';
}

/** MobileNetV2 split for fine-tuning. Dispose with {@link StudentBackbone.dispose}. */
export interface StudentBackbone {
  tf: Tf;
  net: TfjsBackbone;
  /** Input to the last frozen layer's output: `[n, 224, 224, 3] -> [n, 7, 7, 160]`. */
  bottom: TfModule.LayersModel;
  /** The trainable top as a {@link Trunk}. */
  trunk: Trunk;
  dispose(): void;
}

/**
 * Load MobileNetV2 from nsfwjs and split it at {@link FINE_TUNE_FROM}.
 *
 * @throws Error when the layers after the cut are not a simple chain (another nsfwjs build).
 */
export async function loadStudentBackbone(tf: Tf): Promise<StudentBackbone> {
  const net = await loadTfjsBackbone(tf, MOBILENET_V2);
  const full = net.full;
  const layers = full.layers;
  const from = layers.findIndex((l) => l.name === FINE_TUNE_FROM);
  const to = layers.findIndex((l) => l.name === MOBILENET_V2.featureLayer);
  if (from < 0 || to < from) throw new Error(`MobileNetV2: no ${FINE_TUNE_FROM} before ${MOBILENET_V2.featureLayer}`);
  const top = layers.slice(from, to + 1);
  // Each top layer must read exactly the previous one's output (a chain), the first one the cut.
  const inboundOf = (l: TfModule.layers.Layer) => (l.inboundNodes[0]?.inboundLayers ?? []).map((x) => x.name);
  const cutLayer = inboundOf(top[0]!);
  if (cutLayer.length !== 1) throw new Error(`MobileNetV2: ${FINE_TUNE_FROM} has ${cutLayer.length} inputs`);
  top.forEach((l, i) => {
    if (i > 0 && (inboundOf(l).length !== 1 || inboundOf(l)[0] !== top[i - 1]!.name)) {
      throw new Error(`MobileNetV2: the layers from ${FINE_TUNE_FROM} are not a chain at ${l.name}`);
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
    restore(from) {
      for (const l of top) {
        let src: TfModule.layers.Layer;
        try {
          src = from.getLayer(l.name);
        } catch {
          throw new InvalidInputError(`checkpoint has no layer ${l.name} of the student's backbone top`);
        }
        l.setWeights(src.getWeights());
      }
    },
  };
  return { tf, net, bottom, trunk, dispose: () => full.dispose() };
}

/**
 * Inputs of the trainable top for decoded frames (`224 * 224 * 3` RGB bytes each): the
 * frozen bottom's activations, `n * 7 * 7 * 160` floats.
 *
 * @param onBatch called after each batch (heartbeat; the event loop is yielded to between batches).
 */
export async function trunkInputs(bb: StudentBackbone, pixels: Uint8Array[], batchSize = 16, onBatch?: (done: number) => void): Promise<Float32Array> {
  const { tf } = bb;
  const s = MOBILENET_V2.inputSize;
  const per = s * s * 3;
  const rowSize = bb.trunk.inputShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(pixels.length * rowSize);
  for (let start = 0; start < pixels.length; start += batchSize) {
    const batch = pixels.slice(start, start + batchSize);
    const input = toUnitFloats(batch, per);
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
 * The published student: MobileNetV2 and the head as one layers model,
 * `[n, 224, 224, 3]` (RGB / 255, prepared as `decodeForBackbone`) to class probabilities
 * `[n, numClasses]`. The head's weights come from `head` (a head on features, or a
 * trunk-and-head model whose top layers, when present, replace the backbone's).
 *
 * @returns the model; it shares the backbone's layers, so dispose `bb` (not the model) when done.
 * @throws ModelMismatchError when `head` lacks the head's layers.
 */
export async function studentImageModel(bb: StudentBackbone, head: SerializedModel): Promise<TfModule.LayersModel> {
  const { tf } = bb;
  const meta = readHeadMetadata(head);
  if (!meta) throw new InvalidInputError('student model has no reelset head metadata');
  const arch: HeadArch = meta.arch;
  const net = await deserializeModel(head);
  let params: Params;
  try {
    if (net.layers.some((l) => l.name === FINE_TUNE_FROM)) bb.trunk.restore(net);
    const names = arch.hidden > 0 ? ['hidden', 'logits'] : ['logits'];
    const vars = names.flatMap((n) => net.getLayer(n).getWeights().map((t) => toVariable(tf, tf.tensor(t.dataSync() as Float32Array, t.shape), false)));
    params = { names: names.flatMap((n) => [`${n}/kernel`, `${n}/bias`]), vars };
  } finally {
    net.dispose();
  }
  try {
    const full = bb.net.full;
    // Output of the backbone's own graph (node 0): the top layers are applied again in checkpoint models.
    const features = full.getLayer(MOBILENET_V2.featureLayer).getOutputAt(0) as TfModule.SymbolicTensor;
    return headOn(tf, arch, params, full.inputs, features, 'reelset_student');
  } finally {
    tf.dispose(params.vars);
  }
}
