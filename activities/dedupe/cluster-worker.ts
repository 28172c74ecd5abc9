/**
 * Runs inside a worker thread (see `ModuleThread`): near-duplicate clustering off the
 * activity's event loop, with progress posted back for heartbeats.
 */
import { nearDuplicateClusters, type NearDuplicateOptions, type NearDuplicateResult } from './ann';

/** {@link nearDuplicateClusters} with progress as messages. */
export function cluster(
  vectors: Float32Array,
  dim: number,
  opts: Omit<NearDuplicateOptions, 'onProgress'>,
  progress: (p: { phase: string; done: number; of: number }) => void,
): NearDuplicateResult {
  return nearDuplicateClusters(vectors, dim, { ...opts, onProgress: (phase, done, of) => progress({ phase, done, of }) });
}
