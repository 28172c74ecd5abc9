/**
 * An exported student (`student.onnx` / `student-fp16.onnx`, written by
 * `reelset models export`, `infra/student_to_onnx.py`) on ONNX Runtime, behind the same
 * {@link ImageClassifier} interface as the tfjs model: uint8 RGB pixels in (the image
 * prepared as artifact.json says), probabilities, pooled features and (models of the
 * EfficientNet backbones) the backbone's ImageNet logits out.
 */
import type * as Ort from 'onnxruntime-node';
import { InvalidInputError, ModelMismatchError, type ModelArtifact } from '../contracts';
import { decodeForBackbone, preparationOf } from './backbone/model';
import type { ImageClassifier, ImagePredictions } from './classifier';

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
    throw new ModelMismatchError(`${file}: inputs ${session.inputNames.join(',')} / outputs ${session.outputNames.join(',')}, expected pixels -> probabilities, features`);
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
      const n = images.length;
      const probs = new Float32Array(n * k);
      let features = new Float32Array(0);
      let dim = 0;
      let imagenetLogits = new Float32Array(0);
      for (let start = 0; start < n; start += 16) {
        const batch = images.slice(start, start + 16);
        const pixels = await Promise.all(
          batch.map((b, i) =>
            decodeForBackbone(b, prep).catch((err: unknown) => {
              throw new InvalidInputError(`image ${start + i}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
            }),
          ),
        );
        const x = new Uint8Array(pixels.length * s * s * 3);
        pixels.forEach((p, i) => x.set(p, i * s * s * 3));
        const out = await session.run({ pixels: new ort.Tensor('uint8', x, [pixels.length, s, s, 3]) });
        probs.set(out['probabilities']!.data as Float32Array, start * k);
        if (hasImagenet) {
          const l = out['imagenet_logits']!;
          const c = l.dims[1] as number;
          if (imagenetLogits.length === 0) imagenetLogits = new Float32Array(n * c);
          imagenetLogits.set(l.data as Float32Array, start * c);
        }
        const f = out['features']!;
        dim = f.dims[1] as number;
        if (features.length === 0) features = new Float32Array(n * dim);
        const fd = f.data as Float32Array;
        for (let i = 0; i < pixels.length; i++) {
          let q = 0;
          for (let d = 0; d < dim; d++) q += fd[i * dim + d]! ** 2;
          const inv = 1 / Math.max(Math.sqrt(q), 1e-12);
          for (let d = 0; d < dim; d++) features[(start + i) * dim + d] = fd[i * dim + d]! * inv;
        }
      }
      return { probs, features, featureDim: dim, imagenetLogits };
    },
    dispose() {
      void session.release();
    },
  };
}
