import { ExtractOptions, NewCategoryInput } from '../../contracts/inputs';

describe('NewCategoryInput', () => {
  it('{label: "bicycle"} fills every default, nested ones included', () => {
    const v = NewCategoryInput.parse({ label: 'bicycle' });
    expect(v.label).toBe('bicycle');
    expect(v.maxPositiveVideos).toBe(50);
    expect(v.maxNegativeVideos).toBe(8);
    expect(v.extractConcurrency).toBe(4);
    expect(v.dedupeThreshold).toBe(0.79);
    expect(v.validationFraction).toBe(0.25);
    expect(v.seed).toBe(1);
    expect(v.gpuTaskQueue).toBe('reelset-gpu');
    expect(v.heartbeatTimeoutS).toBe(30);
    expect(v.extract).toEqual(ExtractOptions.parse({}));
    expect(v.extract.fps).toBe(1);
    expect(v.extract.maxFramesPerVideo).toBe(60);
    expect(v.extract.minFramesPerVideo).toBe(4);
    expect(v.extract.shortSide).toBe(256);
    expect(v.extract.format).toBe('jpeg');
    expect(v.teacher.epochs).toBe(40);
    expect(v.teacher.hidden).toBe(256);
    expect(v.teacher.batchSize).toBe(32);
    expect(v.student.epochsFactor).toBe(2);
    expect(v.student.temperature).toBe(2);
    expect(v.labeling).toEqual({
      mode: 'human',
      deadlineHours: 72,
      onDeadline: 'proceed',
      reconcileIntervalS: 60,
      validationAnnotators: 2,
      continueAfterSyncs: 200,
    });
  });

  it('labeling: weak or human, a deadline policy, bounded intervals', () => {
    expect(NewCategoryInput.parse({ label: 'dog', labeling: { mode: 'weak' } }).labeling.mode).toBe('weak');
    expect(NewCategoryInput.parse({ label: 'dog', labeling: { deadlineHours: 0.5, onDeadline: 'fail' } }).labeling).toMatchObject({
      mode: 'human',
      deadlineHours: 0.5,
      onDeadline: 'fail',
    });
  });

  it('a partial nested object keeps the other nested defaults', () => {
    const v = NewCategoryInput.parse({ label: 'dog', extract: { fps: 2 }, teacher: { epochs: 5 } });
    expect(v.extract.fps).toBe(2);
    expect(v.extract.maxFramesPerVideo).toBe(60);
    expect(v.teacher.epochs).toBe(5);
    expect(v.teacher.learningRate).toBe(1e-3);
  });

  it('normalises the label: trims and lower-cases', () => {
    expect(NewCategoryInput.parse({ label: '  Bicycle ' }).label).toBe('bicycle');
    expect(NewCategoryInput.parse({ label: 'lab-experiment' }).label).toBe('lab-experiment');
  });

  function issuePaths(input: unknown): string[] {
    const r = NewCategoryInput.safeParse(input);
    expect(r.success).toBe(false);
    return r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
  }

  it.each([
    [{}, 'label'],
    [{ label: '' }, 'label'],
    [{ label: 'bi/cycle' }, 'label'],
    [{ label: '-dash' }, 'label'],
    [{ label: 'x'.repeat(65) }, 'label'],
    [{ label: 42 }, 'label'],
    [{ label: 'dog', maxPositiveVideos: 0 }, 'maxPositiveVideos'],
    [{ label: 'dog', maxNegativeVideos: -1 }, 'maxNegativeVideos'],
    [{ label: 'dog', dedupeThreshold: 1.5 }, 'dedupeThreshold'],
    [{ label: 'dog', validationFraction: 0.95 }, 'validationFraction'],
    [{ label: 'dog', seed: 1.5 }, 'seed'],
    [{ label: 'dog', extract: { fps: 0 } }, 'extract.fps'],
    [{ label: 'dog', extract: { format: 'png' } }, 'extract.format'],
    [{ label: 'dog', extract: { shortSide: 16 } }, 'extract.shortSide'],
    [{ label: 'dog', teacher: { epochs: 'many' } }, 'teacher.epochs'],
    [{ label: 'dog', student: { temperature: 0 } }, 'student.temperature'],
    [{ label: 'dog', heartbeatTimeoutS: 1 }, 'heartbeatTimeoutS'],
    [{ label: 'dog', labeling: { mode: 'crowd' } }, 'labeling.mode'],
    [{ label: 'dog', labeling: { onDeadline: 'wait' } }, 'labeling.onDeadline'],
    [{ label: 'dog', labeling: { deadlineHours: 0 } }, 'labeling.deadlineHours'],
    [{ label: 'dog', labeling: { reconcileIntervalS: 0.1 } }, 'labeling.reconcileIntervalS'],
    [{ label: 'dog', labeling: { validationAnnotators: 0 } }, 'labeling.validationAnnotators'],
  ])('%j -> issue at %s', (input, field) => {
    expect(issuePaths(input)).toContain(field);
  });
});
