/**
 * Named error classes thrown by activities.
 *
 * The class name becomes the Temporal failure `type`; the retry policies in
 * `workflows/policies.ts` list the non-retryable ones by name (a unit test keeps the
 * two lists equal). Everything else is retried.
 */

/** Base class: sets `name` to the concrete class name so Temporal reports it as the failure type. */
export class ReelsetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A video file that cannot be probed or decoded (truncated, empty, not video, audio only). Never retried. */
export class VideoDecodeError extends ReelsetError {
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot decode video ${JSON.stringify(file)}: ${reason}`, options);
  }
}

/** Input that does not validate (workflow input, catalog entry, manifest). Never retried. */
export class InvalidInputError extends ReelsetError {}

/** A catalog file or catalog entry that is malformed. Never retried. */
export class CatalogError extends ReelsetError {}

/** A dataset that cannot be trained on (fewer than two labels, no training frames). Never retried. */
export class DatasetError extends ReelsetError {}

/** A transient failure of a service (S3, Postgres, ffmpeg crash): retried by Temporal. */
export class TransientError extends ReelsetError {}

/** Names of the errors Temporal must not retry; mirrored in `workflows/policies.ts`. */
export const NON_RETRYABLE_ERRORS = [
  VideoDecodeError.name,
  InvalidInputError.name,
  CatalogError.name,
  DatasetError.name,
] as const;
