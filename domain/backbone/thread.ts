/**
 * The backbones on a worker thread: one thread per worker process, each backbone loaded
 * in it once, on first use.
 */
import type { Logger } from '../../lib/logger';
import { ModuleThread } from '../../lib/thread';
import type { ThreadCutmixResult, ThreadEmbedResult, ThreadModelInfo } from './embed-worker';
import { DEFAULT_BACKBONE_OPTIONS, type BackboneName, type BackboneOptions, type FeatureExtractor } from './model';

/**
 * The feature extractors served by a worker thread, so that forward passes (synchronous
 * native calls in ONNX Runtime, synchronous wasm in tfjs) never block the event loop:
 * heartbeats keep flowing while a long video is embedded.
 *
 * One instance per process ({@link getEmbeddingThread}); each backbone is loaded in the
 * thread on its first use with the options given here (runtime, provider, threads; see
 * `domain/backbone/model.ts`), and the choice is logged.
 */
export class EmbeddingThread {
  private readonly thread = new ModuleThread(require.resolve('./embed-worker'));
  private readonly info = new Map<BackboneName, Promise<ThreadModelInfo>>();

  constructor(
    private readonly options: BackboneOptions = DEFAULT_BACKBONE_OPTIONS,
    private readonly logger?: Logger,
  ) {}

  /** Model identity and where it runs (loads the backbone in the thread on first call). */
  model(backbone: BackboneName = 'efficientnet_lite0'): Promise<ThreadModelInfo> {
    let p = this.info.get(backbone);
    if (!p) {
      const started = Date.now();
      const mine = this.thread.call<ThreadModelInfo>('init', [backbone, this.options]);
      p = mine;
      this.info.set(backbone, mine);
      mine.then(
        (i) =>
          this.logger?.info(
            { backbone, backend: i.backend, runtime: this.options.runtime, fallbacks: i.fallbacks, ms: Date.now() - started },
            `${backbone} loaded on a worker thread (${i.backend})${i.fallbacks.length ? `; passed over: ${i.fallbacks.join('; ')}` : ''}`,
          ),
        () => {
          if (this.info.get(backbone) === mine) this.info.delete(backbone);
        },
      );
    }
    return p;
  }

  /**
   * Hash and embed encoded images in the thread (see `embedFrames` in `./embed-worker.ts`).
   * @returns unit-length rows, their norms, pixel hashes, and how many forward passes ran.
   * @throws InvalidInputError naming the image when one cannot be decoded.
   */
  async embed(images: Uint8Array[], batchSize = 8, backbone: BackboneName = 'efficientnet_lite0'): Promise<ThreadEmbedResult> {
    await this.model(backbone);
    return this.thread.call<ThreadEmbedResult>('embedFrames', [backbone, images, batchSize]);
  }

  /**
   * CutMix pairs of encoded frames and embed the mixed images in the thread (see
   * `cutmixFrames` in `./embed-worker.ts`).
   * @returns unit-length rows of the mixed images, their norms and each one's lambda.
   * @throws InvalidInputError naming the sample when an image cannot be decoded.
   */
  async cutmix(
    pairs: Array<[Uint8Array, Uint8Array]>,
    seeds: number[],
    batchSize = 8,
    backbone: BackboneName = 'efficientnet_lite0',
  ): Promise<ThreadCutmixResult> {
    await this.model(backbone);
    return this.thread.call<ThreadCutmixResult>('cutmixFrames', [backbone, pairs, seeds, batchSize]);
  }

  /**
   * Pooled features and ImageNet logits of encoded images in the thread (see `logitsFrames` in `./embed-worker.ts`).
   * @returns unit rows, norms and `images.length * 1000` logits.
   * @throws InvalidInputError naming the image when one cannot be decoded.
   */
  async logits(
    images: Uint8Array[],
    backbone: BackboneName = 'efficientnet_lite0',
    batchSize = 8,
  ): Promise<{ vectors: Float32Array; norms: Float32Array; logits: Float32Array }> {
    await this.model(backbone);
    return this.thread.call('logitsFrames', [backbone, images, batchSize]);
  }

  /**
   * A backbone on the thread in the shape of an in-process model (`id`, `backend`,
   * `embed`): for code that takes a model (quality checks, benchmarks) and for jest, where
   * ONNX Runtime's tensors cannot cross into the test's vm realm in-process.
   */
  async embedder(backbone: BackboneName = 'efficientnet_lite0'): Promise<Pick<FeatureExtractor, 'id' | 'backend' | 'embed'>> {
    const info = await this.model(backbone);
    return {
      id: info.id,
      backend: info.backend,
      embed: async (images, options) =>
        (
          await this.embed(
            images.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)),
            options?.batchSize ?? 8,
            backbone,
          )
        ).vectors,
    };
  }

  /** Live tfjs tensors in the thread (flat across calls when nothing leaks; 0 when tfjs is not used there). */
  numTensors(): Promise<number> {
    return this.thread.call<number>('numTensors', []);
  }

  /** Stop the thread. */
  close(): Promise<void> {
    this.info.clear();
    return this.thread.close();
  }
}

let shared: EmbeddingThread | undefined;

/** The process's embedding thread (created on first call; later calls ignore their arguments). */
export function getEmbeddingThread(options: BackboneOptions = DEFAULT_BACKBONE_OPTIONS, logger?: Logger): EmbeddingThread {
  shared ??= new EmbeddingThread(options, logger);
  return shared;
}
