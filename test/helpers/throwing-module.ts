/** A module run on a worker thread by the failure-type table test: throws the failure class it is asked for. */
import { FAILURE_CLASSES } from '../../contracts';

/**
 * Throw an instance of the named class: a reelset failure class (with its own fields),
 * or a built-in (`TypeError`, `RangeError`).
 */
export function makeError(type: string): Error {
  if (type === 'wrapped') {
    // What the extract activity does: rename a probe's error (about a temporary copy) after the catalog file.
    const inner = new FAILURE_CLASSES.VideoDecodeError('/tmp/reelset-extract-x/video.mp4', 'truncated');
    return new FAILURE_CLASSES.VideoDecodeError('clip.mp4 (video v1)', 'truncated', { cause: inner });
  }
  if (type === 'VideoDecodeError') return new FAILURE_CLASSES.VideoDecodeError('clip.mp4', 'no usable video stream');
  if (type === 'MissingArtifactError') return new FAILURE_CLASSES.MissingArtifactError('s3://b/runs/x/dedupe/manifest.json', 'step manifest');
  const cls = (FAILURE_CLASSES as unknown as Record<string, new (m: string) => Error>)[type];
  if (cls) return new cls(`a ${type} for the table`);
  if (type === 'TypeError') return new TypeError('a TypeError for the table');
  return new RangeError(`a ${type} for the table`);
}

/** Thread entry point: throws. */
export async function throwNamed(type: string): Promise<never> {
  throw makeError(type);
}
