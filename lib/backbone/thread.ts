/**
 * The embedding model on a worker thread: one per worker process, loaded once.
 */
import type { Logger } from '../logger';
import type { TfBackendPreference } from '../tf';
import { ModuleThread } from '../thread';
import type { ThreadCutmixResult, ThreadEmbedResult, ThreadModelInfo } from './embed-worker';

/**
 * The frame embedding model served by a worker thread, so that forward passes (tens of
 * milliseconds each, synchronous in the wasm backend) never block the event loop:
 * heartbeats keep flowing while a long video is embedded.
 *
 * One instance per process ({@link getEmbeddingThread}); the model is loaded in the
 * thread on first use, on the backend chosen then (`REELSET_TF_BACKEND`, see
 * `activities/common/tf.ts`), and the choice is logged.
 */
export class EmbeddingThread {
  private readonly thread = new ModuleThread(require.resolve('./embed-worker'));
  private info: Promise<ThreadModelInfo> | undefined;

  constructor(
    private readonly backend: TfBackendPreference,
    private readonly logger?: Logger,
  ) {}

  /** Model identity and backend (loads the model in the thread on first call). */
  model(): Promise<ThreadModelInfo> {
    if (!this.info) {
      const started = Date.now();
      const p = this.thread.call<ThreadModelInfo>('init', [this.backend]);
      this.info = p;
      p.then(
        (i) => this.logger?.info({ model: i.id.name, backend: i.backend, requested: this.backend, ms: Date.now() - started }, `embedding model loaded on a worker thread (backend ${i.backend})`),
        () => {
          if (this.info === p) this.info = undefined;
        },
      );
    }
    return this.info;
  }

  /**
   * Hash and embed encoded images in the thread (see `embedFrames` in `./embed-worker.ts`).
   * @returns unit-length rows, pixel hashes, and how many forward passes ran.
   * @throws InvalidInputError naming the image when one cannot be decoded.
   */
  async embed(images: Uint8Array[], batchSize = 8): Promise<ThreadEmbedResult> {
    await this.model();
    return this.thread.call<ThreadEmbedResult>('embedFrames', [images, batchSize]);
  }

  /**
   * CutMix pairs of encoded frames and embed the mixed images in the thread (see
   * `cutmixFrames` in `./embed-worker.ts`).
   * @returns unit-length rows of the mixed images and each one's lambda.
   * @throws InvalidInputError naming the sample when an image cannot be decoded.
   */
  async cutmix(pairs: Array<[Uint8Array, Uint8Array]>, seeds: number[], batchSize = 8): Promise<ThreadCutmixResult> {
    await this.model();
    return this.thread.call<ThreadCutmixResult>('cutmixFrames', [pairs, seeds, batchSize]);
  }

  /** Live tensors in the thread (flat across calls when nothing leaks). */
  numTensors(): Promise<number> {
    return this.thread.call<number>('numTensors', []);
  }

  /** Stop the thread. */
  close(): Promise<void> {
    this.info = undefined;
    return this.thread.close();
  }
}

let shared: EmbeddingThread | undefined;

/** The process's embedding thread (created on first call; later calls ignore their arguments). */
export function getEmbeddingThread(backend: TfBackendPreference = 'auto', logger?: Logger): EmbeddingThread {
  shared ??= new EmbeddingThread(backend, logger);
  return shared;
}
