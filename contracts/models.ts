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
 * The student is one image model: MobileNetV2 (nsfwjs weights, its top fine-tuned where
 * the training backend allowed) and the distilled head together, image in, class
 * probabilities out. The teacher is a head on InceptionV3 features: its input is the
 * backbone's raw `flatten_1` vector, which needs the InceptionV3 ONNX file (or nsfwjs).
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
   * to sRGB, resize the whole frame to size x size without keeping the aspect ratio
   * (stretch, no crop) with a Lanczos-3 kernel, Gaussian blur of `blurSigma` pixels (0:
   * none), 8-bit RGB, then each byte / 255 (range [0, 1]; no mean or standard deviation).
   * `lib/backbone/model.ts: decodeForBackbone` is the reference (sharp).
   */
  preprocess: string;
  size: number;
  blurSigma: number;
}

/** A vector of backbone features as the model's input. */
export interface FeatureInput {
  kind: 'features';
  /** `[null, dim]`, float32: the backbone's raw `flatten_1` output (not normalised). */
  shape: [null, number];
  /** The backbone and its preprocessing (an `EmbeddingModelId` without the runtime: any runtime's features fit). */
  backbone: { name: string; weightsSha256: string; inputSize: number; dim: number; preprocess: string };
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
  /** `[null, labels.length]` probabilities (softmax, rows sum to 1), from the layer named `probs`. */
  output: { kind: 'probabilities'; shape: [null, number]; layer: 'probs' };
  /** The backbone inside (student) or under (teacher) the model. */
  backbone: {
    name: string;
    /** sha256 of the nsfwjs weights the backbone started from. */
    weightsSha256: string;
    nsfwjsVersion: string;
    /** First layer whose weights were fine-tuned (student), or null when the backbone is as shipped. */
    fineTunedFrom: string | null;
  };
  /** Head shape and training hyper-parameters (learning rate, epochs, loss, temperature, ...). */
  head: { hidden: number; dropout: number };
  training: Record<string, number | boolean | string>;
  /** The run that trained it. */
  workflowId: string;
}
