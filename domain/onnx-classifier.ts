/**
 * An exported student (`student.onnx` / `student-fp16.onnx`, written by
 * `reelset models export`, `infra/student_to_onnx.py`) on ONNX Runtime, behind the same
 * {@link ImageClassifier} interface as the tfjs model: uint8 RGB pixels in (the image
 * prepared as artifact.json says), probabilities, pooled features and (models of the
 * EfficientNet backbones) the backbone's ImageNet logits out.
 */
import type * as Ort from 'onnxruntime-node';
import { ModelMismatchError, type ModelArtifact } from '../contracts';
import { preparationOf } from './backbone/model';
import { predictInBatches, type ImageClassifier, type ImagePredictions } from './classifier';

/**
 * Open an exported student on ONNX Runtime's CPU provider.
 *
 * @param threads intra-op threads (0: ONNX Runtime's default).
 * @throws ModelMismatchError when the file's inputs or outputs are not `pixels` -> `probabilities`, `features`.
 */
export async function loadOnnxClassifier(file: string, artifact: ModelArtifact, threads = 0): Promise<ImageClassifier> {
  if (artifact.input.kind !== 'image') throw new ModelMismatchError('an exported student takes images');
  const ort = require('onnxruntime-node') as typeof Ort;
  const session = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: 'all',
    ...(threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  if (session.inputNames[0] !== 'pixels' || !session.outputNames.includes('probabilities') || !session.outputNames.includes('features')) {
    throw new ModelMismatchError(
      `${file}: inputs ${session.inputNames.join(',')} / outputs ${session.outputNames.join(',')}, expected pixels -> probabilities, features`,
    );
  }
  const prep = preparationOf(artifact.input);
  const s = prep.inputSize;
  const hasImagenet = session.outputNames.includes('imagenet_logits');
  const k = artifact.labels.length;
  return {
    artifact,
    labels: artifact.labels,
    prep,
    async predict(images: Buffer[]): Promise<ImagePredictions> {
      return predictInBatches(images, prep, k, async (pixels) => {
        const x = new Uint8Array(pixels.length * s * s * 3);
        pixels.forEach((p, i) => x.set(p, i * s * s * 3));
        const out = await session.run({ pixels: new ort.Tensor('uint8', x, [pixels.length, s, s, 3]) });
        const f = out['features']!;
        const l = hasImagenet ? out['imagenet_logits']! : null;
        return {
          probs: out['probabilities']!.data as Float32Array,
          features: { data: f.data as Float32Array, dim: f.dims[1] as number },
          ...(l ? { imagenetLogits: { data: l.data as Float32Array, classes: l.dims[1] as number } } : {}),
        };
      });
    },
    dispose() {
      void session.release();
    },
  };
}
