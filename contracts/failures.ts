/**
 * The failure classes of reelset and the one list of what never retries.
 *
 * Every class is an `ApplicationFailure` whose `type` is the class name and whose
 * `nonRetryable` is the class's own decision ({@link ReelsetError.mayRetry}): thrown
 * from an activity, a worker thread (revived by `lib/thread.ts`) or a child workflow's
 * activity, the workflow and the CLI see the same type, and a non-retryable class is
 * never retried whatever the caller's retry policy says. The retry policies in
 * `./temporal` also list the non-retryable types by name ({@link NON_RETRYABLE_ERROR_TYPES}),
 * which covers the same names arriving from other code. Pure: safe in the workflow
 * sandbox, where `throw new InvalidInputError(...)` fails the run instead of retrying
 * the workflow task.
 */
import { ApplicationFailure } from '@temporalio/common';

/**
 * Base class: an `ApplicationFailure` of type = the concrete class name, non-retryable
 * when the class says so. Subclasses add fields.
 *
 * @param message what went wrong, naming the file, field or key.
 * @param options.cause the underlying error; options.details small serialisable facts for the history.
 */
export class ReelsetError extends ApplicationFailure {
  /** Whether retrying may help; {@link NON_RETRYABLE_ERROR_TYPES} lists the classes where it is false. */
  static readonly mayRetry: boolean = true;

  constructor(message: string, options?: { cause?: unknown; details?: unknown[] }) {
    const cls = new.target as unknown as { name: string; mayRetry: boolean };
    super(message, cls.name, !cls.mayRetry, options?.details, options?.cause instanceof Error ? options.cause : undefined);
    Object.defineProperty(this, 'name', { value: cls.name, enumerable: false, writable: true, configurable: true });
  }
}

/** A video file that cannot be probed or decoded (truncated, empty, not video, audio only, no usable stream). Never retried. */
export class VideoDecodeError extends ReelsetError {
  static override readonly mayRetry = false;
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot decode video ${JSON.stringify(file)}: ${reason}`, options);
  }
}

/** Input that does not validate (workflow input, CLI argument, option out of range). Never retried. */
export class InvalidInputError extends ReelsetError {
  static override readonly mayRetry = false;
}

/** A catalog file or catalog entry that is malformed, or a video id / label the catalog does not have. Never retried. */
export class CatalogError extends ReelsetError {
  static override readonly mayRetry = false;
}

/** A dataset that cannot be built or trained on (fewer than two labels, no frames, no training rows). Never retried. */
export class DatasetError extends ReelsetError {
  static override readonly mayRetry = false;
}

/**
 * An artifact a step needs is not where its manifest says (a step manifest, a frames
 * manifest, a vector pack, a model file). Retrying reads the same bucket: never retried;
 * the message names the key and the step that should have written it.
 */
export class MissingArtifactError extends ReelsetError {
  static override readonly mayRetry = false;
  constructor(
    readonly key: string,
    readonly what: string,
    options?: { cause?: unknown },
  ) {
    super(`${what} is missing: ${key}`, options);
  }
}

/** A model that does not fit its data (another feature size, other classes, a checkpoint of another shape). Never retried. */
export class ModelMismatchError extends ReelsetError {
  static override readonly mayRetry = false;
}

/** Training that cannot go on with these settings (the loss diverged to NaN or infinity). Never retried. */
export class TrainingDivergedError extends ReelsetError {
  static override readonly mayRetry = false;
}

/** An environment variable that does not validate (raised at start, before any work). Never retried. */
export class ConfigError extends ReelsetError {
  static override readonly mayRetry = false;
}

/**
 * A labelling deadline passed with frames not done, and the run's policy is `fail`.
 * Never retried: the people's labels stay in Postgres and a later run inherits them.
 */
export class LabelingDeadlineError extends ReelsetError {
  static override readonly mayRetry = false;
}

/**
 * Label Studio refused a request (4xx: a wrong token, a project or task that is gone, a
 * label configuration it rejects). Never retried; the message names the call and the
 * answer, never the token. Unreachable or 5xx answers are a retried {@link TransientError}.
 */
export class LabelStudioError extends ReelsetError {
  static override readonly mayRetry = false;
}

/** A transient failure of a service or process (S3, Postgres, ffmpeg crashed or timed out): retried. */
export class TransientError extends ReelsetError {}

/**
 * The nightly fan-out finished and some labels failed to retrain: thrown after every label
 * ran, so that the run (and a schedule with pause-on-failure) shows it; `details[0]` is the
 * fan-out's whole result (`RetrainAllResult`). Never retried.
 */
export class RetrainFailedError extends ReelsetError {
  static override readonly mayRetry = false;
}

/**
 * A registry transition that is not allowed (a version that does not exist, promoting an
 * archived model, a rollback with nothing to roll back to, a model not evaluated on the
 * evaluation set). Never retried; the message says what the registry holds.
 */
export class RegistryError extends ReelsetError {
  static override readonly mayRetry = false;
}

/**
 * A promotion that lost a race: the production model changed between the gate's
 * comparison and the promotion (another promotion or rollback won). Never retried: the
 * gate must compare against the new production model first.
 */
export class PromotionConflictError extends ReelsetError {
  static override readonly mayRetry = false;
}

/** Every failure class, by name (for the thread boundary and tests). */
export const FAILURE_CLASSES = {
  ReelsetError,
  VideoDecodeError,
  InvalidInputError,
  CatalogError,
  DatasetError,
  MissingArtifactError,
  ModelMismatchError,
  TrainingDivergedError,
  ConfigError,
  LabelingDeadlineError,
  LabelStudioError,
  TransientError,
  RegistryError,
  PromotionConflictError,
  RetrainFailedError,
} as const;

/** Name of a failure class. */
export type FailureType = keyof typeof FAILURE_CLASSES;

/**
 * Failure types Temporal must never retry: the single list every retry policy uses
 * (derived from each class's `mayRetry`).
 */
export const NON_RETRYABLE_ERROR_TYPES: readonly string[] = Object.values(FAILURE_CLASSES)
  .filter((c) => !c.mayRetry)
  .map((c) => c.name);

/** True when a failure of this type must not be retried. */
export function isNonRetryable(type: string | undefined | null): boolean {
  return type !== undefined && type !== null && NON_RETRYABLE_ERROR_TYPES.includes(type);
}

/**
 * What a failure chain says, for people and results: the type and message of its first
 * `ApplicationFailure` (the error the activity, thread or workflow code threw), found by
 * walking down from the top through the wrappers Temporal adds (`ChildWorkflowFailure`,
 * `ActivityFailure`). Causes *below* it (the original error a failure class wraps, such
 * as a temporary file's path) are not reported. Without any `ApplicationFailure`, the
 * top error's name and message.
 */
export function failureOf(err: unknown): { type: string; message: string } {
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure) return { type: e.type ?? e.name, message: e.message };
  }
  return { type: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) };
}
