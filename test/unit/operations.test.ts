/**
 * Operations' pure parts: the schedules file schema, durations, calendars compared by the
 * seconds they match, the schedule diff of `apply`, the visibility query of `runs list`,
 * the retrain inputs, the labelled-frames fingerprint and the metrics read from results.
 */
import type { ScheduleDescription } from '@temporalio/client';
import { Registry } from 'prom-client';
import { overlapPolicy, readSchedulesFile, scheduleDiff, DEFAULT_SCHEDULES_FILE } from '../../cli/commands/schedule';
import {
  calendarValues,
  NewCategoryInput,
  parseDuration,
  RetrainAllInput,
  RetrainInput,
  retrainInputOf,
  runsListQuery,
  ScheduleConfig,
  SchedulesFile,
} from '../../contracts';
import { labelsFingerprint } from '../../domain/labelled';
import { observeActivityResult, pipelineMetrics } from '../../workers/metrics';

describe('schedules file', () => {
  test('the repository file validates, with the chosen policies', () => {
    const f = readSchedulesFile(DEFAULT_SCHEDULES_FILE);
    expect(f.schedules).toHaveLength(1);
    expect(f.schedules[0]).toMatchObject({ overlap: 'skip', catchupWindow: 4 * 3_600_000, pauseOnFailure: true, timeZone: 'UTC', labels: 'all', jitter: 0 });
    expect(f.schedules[0]!.calendars[0]).toMatchObject({ hour: 2, minute: 30, second: 0, dayOfWeek: '*' });
    expect(overlapPolicy(f.schedules[0]!)).toBe('SKIP');
  });

  test.each([
    [{ timeZone: 'Mars/Olympus' }, 'schedules.0.timeZone', 'IANA'],
    [{ calendars: [{ hour: 24 }] }, 'schedules.0.calendars.0.hour', ''],
    [{ calendars: [{ dayOfWeek: ['FUNDAY'] }] }, 'schedules.0.calendars.0.dayOfWeek', ''],
    [{ catchupWindow: '5s' }, 'schedules.0.catchupWindow', 'outside'],
    [{ catchupWindow: 'soon' }, 'schedules.0.catchupWindow', 'not a duration'],
    [{ overlap: 'sometimes' }, 'schedules.0.overlap', ''],
    [{ overrides: { teacher: { epochs: 0 } } }, 'schedules.0.overrides', 'teacher.epochs'],
    [{ overrides: { lable: 'x' } }, 'schedules.0.overrides', 'lable'],
    [{ id: 'Nightly Retrain' }, 'schedules.0.id', 'lower-case'],
  ])('%j is rejected at %s', (over, at, words) => {
    const parsed = SchedulesFile.safeParse({ schedules: [{ id: 'n', calendars: [{ hour: 2 }], timeZone: 'UTC', ...over }] });
    expect(parsed.success).toBe(false);
    const issue = parsed.error!.issues.find((i) => i.path.join('.') === at);
    expect(issue).toBeDefined();
    expect(issue!.message).toContain(words);
  });

  test('duplicate ids are rejected; day names are case-insensitive', () => {
    const s = { id: 'n', calendars: [{ hour: 2, dayOfWeek: ['monday', 'Friday'] }], timeZone: 'Europe/Paris' };
    expect(SchedulesFile.safeParse({ schedules: [s, s] }).error?.issues[0]?.message).toContain('duplicate schedule id');
    expect(ScheduleConfig.parse(s).calendars[0]!.dayOfWeek).toEqual(['MONDAY', 'FRIDAY']);
  });

  test('durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('4 hours')).toBe(14_400_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('4 fortnights')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
  });
});

describe('calendars compared by the seconds they match', () => {
  const described = {
    second: [{ start: 0, end: 0, step: 1 }],
    minute: [{ start: 30, end: 30, step: 1 }],
    hour: [{ start: 2, end: 2, step: 1 }],
    dayOfMonth: [{ start: 1, end: 31, step: 1 }],
    month: [{ start: 'JANUARY', end: 'DECEMBER', step: 1 }],
    year: [],
    dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }],
  };
  test('the file form and the server form of 02:30 daily are equal', () => {
    const file = ScheduleConfig.parse({ id: 'n', calendars: [{ hour: 2, minute: 30 }], timeZone: 'UTC' }).calendars[0]!;
    expect(calendarValues(file as never)).toEqual(calendarValues(described));
  });
  test('lists and ranges with steps expand to the same values', () => {
    expect(calendarValues({ hour: [0, 6, 12, 18] }).hour).toEqual(calendarValues({ hour: [{ start: 0, end: 18, step: 6 }] }).hour);
    expect(calendarValues({ dayOfWeek: ['MONDAY', 'TUESDAY'] }).dayOfWeek).toEqual([1, 2]);
    expect(calendarValues({ minute: 31 })).not.toEqual(calendarValues(described));
  });
});

describe('scheduleDiff (what apply compares)', () => {
  const s = ScheduleConfig.parse({ id: 'nightly', calendars: [{ hour: 2, minute: 30 }], timeZone: 'UTC', labels: 'all' });
  const cfg = { REELSET_VIDEO_TASK_QUEUE: 'reelset-video' };
  const desc = (over: Record<string, unknown> = {}) =>
    ({
      spec: {
        calendars: [
          {
            second: [{ start: 0, end: 0, step: 1 }],
            minute: [{ start: 30, end: 30, step: 1 }],
            hour: [{ start: 2, end: 2, step: 1 }],
            dayOfMonth: [{ start: 1, end: 31, step: 1 }],
            month: [{ start: 'JANUARY', end: 'DECEMBER', step: 1 }],
            year: [],
            dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }],
          },
        ],
        intervals: [],
        skip: [],
        timezone: 'UTC',
      },
      policies: { overlap: 'SKIP', catchupWindow: 4 * 3_600_000, pauseOnFailure: true },
      action: {
        type: 'startWorkflow',
        workflowId: 'nightly',
        workflowType: 'retrainAllWorkflow',
        taskQueue: 'reelset-video',
        args: [{ labels: 'all', concurrency: 2, force: false, overrides: {} }],
      },
      state: { paused: false },
      ...over,
    }) as unknown as ScheduleDescription;
  test('equal: nothing to do', () => {
    expect(scheduleDiff(s, desc(), cfg)).toEqual([]);
  });
  test('each kind of change is named', () => {
    expect(scheduleDiff(s, desc({ policies: { overlap: 'BUFFER_ALL', catchupWindow: 31_536_000_000, pauseOnFailure: false } }), cfg)).toEqual([
      'overlap',
      'catchupWindow',
      'pauseOnFailure',
    ]);
    expect(scheduleDiff(s, desc({ spec: { ...desc().spec, timezone: 'Europe/Paris', calendars: [] } }), cfg)).toEqual(['calendars', 'timeZone']);
    expect(scheduleDiff(s, desc(), { REELSET_VIDEO_TASK_QUEUE: 'other' })).toEqual(['taskQueue']);
    expect(scheduleDiff({ ...s, labels: ['cup'] }, desc(), cfg)).toEqual(['input (labels, concurrency, force, overrides)']);
  });
});

describe('runs list query', () => {
  test('label and status filters, quoted', () => {
    expect(runsListQuery({})).toBe('ReelsetStage IS NOT NULL');
    expect(runsListQuery({ label: 'cup', status: 'failed' })).toBe('ReelsetStage IS NOT NULL AND ReelsetLabel = "cup" AND ExecutionStatus = "Failed"');
    expect(runsListQuery({ label: 'a"b\\c', type: 'retrainWorkflow' })).toBe(
      'ReelsetStage IS NOT NULL AND ReelsetLabel = "a\\"b\\\\c" AND WorkflowType = "retrainWorkflow"',
    );
    expect(runsListQuery({ status: 'timed_out' })).toContain('"TimedOut"');
  });
});

describe('retrain inputs', () => {
  test('defaults, and overrides checked against the new-category schema', () => {
    expect(RetrainInput.parse({ label: ' Cup ' })).toEqual({ label: 'cup', force: false, overrides: {} });
    expect(RetrainAllInput.parse({})).toEqual({ labels: 'all', concurrency: 2, force: false, overrides: {} });
    const bad = RetrainInput.safeParse({ label: 'cup', overrides: { teacher: { epochs: -1 }, label: 'dog' } });
    expect(bad.success).toBe(false);
    const text = bad.error!.issues.map((i) => i.message).join(' ');
    expect(text).toContain('teacher.epochs');
    expect(text).toContain('cannot change the label');
  });
});

describe("a retrain's pipeline input", () => {
  const last = (labeling?: object) => ({
    ...NewCategoryInput.parse({ label: 'cup', teacher: { epochs: 7 }, ...(labeling ? { labeling } : {}) }),
    label: 'cup',
  });

  test("the last run's labelling mode, people included; an object override merges into the last run's", () => {
    const human = retrainInputOf(last({ mode: 'human', deadlineHours: 12 }), {}, 'cup');
    expect(human.data?.labeling).toMatchObject({ mode: 'human', deadlineHours: 12 });
    const weak = retrainInputOf(last({ mode: 'weak' }), { labeling: { deadlineHours: 24 } }, 'cup');
    expect(weak.data?.labeling).toMatchObject({ mode: 'weak', deadlineHours: 24 });
    const toWeak = retrainInputOf(last({ mode: 'human' }), { labeling: { mode: 'weak' }, teacher: { dropout: 0.1 } }, 'cup');
    expect(toWeak.data?.labeling.mode).toBe('weak');
    expect(toWeak.data?.teacher).toMatchObject({ epochs: 7, dropout: 0.1 });
    expect(retrainInputOf(last(), { maxNegativeVideos: 0 }, 'cup').data?.maxNegativeVideos).toBe(0);
  });

  test('a run from before human labelling (no `labeling` in its input) keeps weak labels; no run at all: the default, people', () => {
    const { labeling: _l, ...old } = last();
    expect(retrainInputOf(old, {}, 'cup').data?.labeling.mode).toBe('weak');
    expect(retrainInputOf(undefined, {}, 'cup').data?.labeling.mode).toBe('human');
    expect(retrainInputOf({ ...old, teacher: { epochs: -1 } }, {}, 'cup').success).toBe(false);
  });
});

describe('labelled frames fingerprint', () => {
  test('order does not matter; a label or a frame does', () => {
    const a = [
      { key: 'f/1', label: 'cup' },
      { key: 'f/2', label: 'other' },
    ];
    expect(labelsFingerprint(a)).toBe(labelsFingerprint([...a].reverse()));
    expect(labelsFingerprint(a)).not.toBe(labelsFingerprint([a[0]!, { key: 'f/2', label: 'cup' }]));
    expect(labelsFingerprint(a)).not.toBe(labelsFingerprint([a[0]!]));
    expect(labelsFingerprint([])).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('metrics from activity results', () => {
  test('frames, embedding throughput, clusters and step durations are counted from summaries', async () => {
    const registry = new Registry();
    const m = pipelineMetrics(registry);
    observeActivityResult(m, 'extractVideo', { frames: 12, reused: false }, 1);
    observeActivityResult(m, 'extractVideo', { frames: 5, reused: true }, 0.1);
    observeActivityResult(m, 'embedFrames', { computed: 40, cached: 10, reused: false, durationMs: 2000, manifestKey: 'runs/x/embed/manifest.json' }, 2);
    observeActivityResult(
      m,
      'dedupeFrames',
      { clusters: 7, frames: 50, duplicates: 43, reused: true, durationMs: 10, manifestKey: 'runs/x/dedupe/manifest.json' },
      0.01,
    );
    const text = await registry.metrics();
    expect(text).toContain('reelset_frames_extracted_total 12');
    expect(text).toContain('reelset_frames_reused_total 5');
    expect(text).toContain('reelset_frames_embedded_total 40');
    expect(text).toContain('reelset_embedding_frames_per_second 20');
    expect(text).toContain('reelset_dedupe_clusters_total 0'); // a reused step did no work
    expect(text).toContain('reelset_step_duration_seconds_count{step="embed"} 1');
    expect(text).not.toContain('step="dedupe"');
    // A batch counts per video: its frames, and its failed video as a failed extraction.
    observeActivityResult(
      m,
      'extractVideos',
      {
        videos: [
          { videoId: 'a', ok: true, summary: { frames: 3, sampled: 3, decodeErrorCount: 0, reused: false } },
          { videoId: 'b', ok: false, failure: { type: 'VideoDecodeError', message: 'x' } },
          { videoId: 'c', ok: true, summary: { frames: 2, sampled: 2, decodeErrorCount: 0, reused: true } },
        ],
        resumed: 0,
      },
      1,
    );
    const after = await registry.metrics();
    expect(after).toContain('reelset_frames_extracted_total 15');
    expect(after).toContain('reelset_frames_reused_total 7');
    expect(after).toContain('reelset_videos_extracted_total{outcome="failed"} 1');
  });

  test('frames sent to labelling: weak label steps and the tasks of human ones', async () => {
    const registry = new Registry();
    const m = pipelineMetrics(registry);
    observeActivityResult(m, 'labelFrames', { sent: 4, reused: false }, 0.1);
    observeActivityResult(m, 'prepareLabeling', { tasks: 6, created: 5, reused: 1 }, 1);
    observeActivityResult(m, 'prepareLabeling', { tasks: 0, finished: { reused: true } }, 0.1);
    expect(await registry.metrics()).toContain('reelset_labelling_sent_total 10');
  });
});
