import * as errors from '../../activities/common/errors';
import { NON_RETRYABLE_ERRORS, ReelsetError } from '../../activities/common/errors';
import { DEFAULT_RETRY, long, NON_RETRYABLE_ERROR_TYPES, SHORT } from '../../workflows/policies';

describe('retry policies', () => {
  it('NON_RETRYABLE_ERROR_TYPES equals NON_RETRYABLE_ERRORS (as sets)', () => {
    expect(new Set(NON_RETRYABLE_ERROR_TYPES)).toEqual(new Set<string>(NON_RETRYABLE_ERRORS));
    expect(NON_RETRYABLE_ERROR_TYPES).toHaveLength(new Set(NON_RETRYABLE_ERROR_TYPES).size);
  });

  it('TransientError is retried', () => {
    expect(NON_RETRYABLE_ERROR_TYPES).not.toContain('TransientError');
    expect(NON_RETRYABLE_ERRORS).not.toContain('TransientError');
  });

  it('every policy uses the non-retryable list', () => {
    expect(DEFAULT_RETRY.nonRetryableErrorTypes).toEqual(NON_RETRYABLE_ERROR_TYPES);
    expect(SHORT.retry).toBe(DEFAULT_RETRY);
    const l = long(45, '1 hour', 'gpu-q');
    expect(l.retry).toBe(DEFAULT_RETRY);
    expect(l.heartbeatTimeout).toBe('45 seconds');
    expect(l.taskQueue).toBe('gpu-q');
    expect(long(30)).not.toHaveProperty('taskQueue');
  });
});

describe('error classes', () => {
  const classes = Object.entries(errors as Record<string, unknown>).filter(
    ([, v]) => typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof Error,
  );

  it('exports the expected classes', () => {
    expect(classes.map(([n]) => n).sort()).toEqual(
      expect.arrayContaining(['CatalogError', 'DatasetError', 'InvalidInputError', 'TransientError', 'VideoDecodeError']),
    );
  });

  it.each(['CatalogError', 'DatasetError', 'InvalidInputError', 'TransientError'] as const)(
    "%s's instance name equals the class name",
    (name) => {
      const Cls = errors[name];
      const e = new Cls('boom');
      expect(e.name).toBe(name);
      expect(Cls.name).toBe(name);
      expect(e).toBeInstanceOf(ReelsetError);
      expect(e).toBeInstanceOf(Error);
      expect(e.message).toBe('boom');
    },
  );

  it("VideoDecodeError's name, file, reason, message and cause", () => {
    const cause = new Error('inner');
    const e = new errors.VideoDecodeError('/v/a b.mp4', 'file is empty (0 bytes)', { cause });
    expect(e.name).toBe('VideoDecodeError');
    expect(e.file).toBe('/v/a b.mp4');
    expect(e.reason).toBe('file is empty (0 bytes)');
    expect(e.message).toBe('cannot decode video "/v/a b.mp4": file is empty (0 bytes)');
    expect(e.cause).toBe(cause);
  });

  it('every non-retryable name is an exported error class', () => {
    for (const n of NON_RETRYABLE_ERRORS) {
      const Cls = (errors as Record<string, unknown>)[n];
      expect(typeof Cls).toBe('function');
    }
  });
});
