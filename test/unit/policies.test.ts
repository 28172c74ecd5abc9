import { ApplicationFailure } from '@temporalio/common';
import * as contracts from '../../contracts';
import { DEFAULT_RETRY, FAILURE_CLASSES, isNonRetryable, long, NON_RETRYABLE_ERROR_TYPES, ReelsetError, SHORT } from '../../contracts';

describe('retry policies', () => {
  it('the non-retryable list is every failure class whose retryable is false, once each', () => {
    const expected = Object.values(FAILURE_CLASSES)
      .filter((c) => !c.mayRetry)
      .map((c) => c.name);
    expect([...NON_RETRYABLE_ERROR_TYPES].sort()).toEqual(expected.sort());
    expect(NON_RETRYABLE_ERROR_TYPES).toHaveLength(new Set(NON_RETRYABLE_ERROR_TYPES).size);
    expect(NON_RETRYABLE_ERROR_TYPES).toEqual(
      expect.arrayContaining(['VideoDecodeError', 'InvalidInputError', 'CatalogError', 'DatasetError', 'MissingArtifactError', 'ModelMismatchError']),
    );
  });

  it('TransientError and unknown types are retried', () => {
    expect(NON_RETRYABLE_ERROR_TYPES).not.toContain('TransientError');
    expect(isNonRetryable('TransientError')).toBe(false);
    expect(isNonRetryable('TypeError')).toBe(false);
    expect(isNonRetryable(undefined)).toBe(false);
    expect(isNonRetryable('VideoDecodeError')).toBe(true);
  });

  it('every policy uses the non-retryable list', () => {
    expect(DEFAULT_RETRY.nonRetryableErrorTypes).toEqual([...NON_RETRYABLE_ERROR_TYPES]);
    expect(SHORT.retry).toBe(DEFAULT_RETRY);
    const l = long(45, '1 hour', 'gpu-q');
    expect(l.retry).toBe(DEFAULT_RETRY);
    expect(l.heartbeatTimeout).toBe('45 seconds');
    expect(l.taskQueue).toBe('gpu-q');
    expect(long(30)).not.toHaveProperty('taskQueue');
  });
});

describe('error classes', () => {
  it('every exported Error subclass of the contracts is in FAILURE_CLASSES under its own name', () => {
    const exported = Object.entries(contracts as Record<string, unknown>).filter(
      ([, v]) => typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof Error,
    );
    for (const [name, cls] of exported) expect((FAILURE_CLASSES as Record<string, unknown>)[name]).toBe(cls);
  });

  it.each(Object.keys(FAILURE_CLASSES).filter((n) => !['VideoDecodeError', 'MissingArtifactError'].includes(n)))(
    "%s's instance name equals the class name",
    (name) => {
      const Cls = (FAILURE_CLASSES as unknown as Record<string, new (m: string) => Error>)[name]!;
      const e = new Cls('boom');
      expect(e.name).toBe(name);
      expect(Cls.name).toBe(name);
      expect(e).toBeInstanceOf(ReelsetError);
      expect(e.message).toBe('boom');
    },
  );

  it("VideoDecodeError's name, file, reason, message and cause", () => {
    const cause = new Error('inner');
    const e = new contracts.VideoDecodeError('/v/a b.mp4', 'file is empty (0 bytes)', { cause });
    expect(e.name).toBe('VideoDecodeError');
    expect(e.file).toBe('/v/a b.mp4');
    expect(e.reason).toBe('file is empty (0 bytes)');
    expect(e.message).toBe('cannot decode video "/v/a b.mp4": file is empty (0 bytes)');
    expect(e.cause).toBe(cause);
  });

  it('every class is an ApplicationFailure of its own name, with its own retry decision', () => {
    const f = new contracts.InvalidInputError('field "label": required', { details: [{ path: 'label' }] });
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f.type).toBe('InvalidInputError');
    expect(f.nonRetryable).toBe(true);
    expect(f.details).toEqual([{ path: 'label' }]);
    const t = new contracts.TransientError('x');
    expect(t.type).toBe('TransientError');
    expect(t.nonRetryable).toBe(false);
  });
});
