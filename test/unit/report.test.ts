/**
 * The run report page from synthetic run data: every section, Vega-Lite charts rendered
 * to SVG, text escaped (a label or a failure message never becomes markup), a failed run
 * shows its reason first.
 */
import sharp from 'sharp';
import type { LevelMetrics } from '../../contracts';
import { renderSvg, trainingCurvesSpec } from '../../activities/reports/charts';
import type { RunReportData } from '../../activities/reports/collect';
import { renderRunReportHtml } from '../../activities/reports/html';

const level = (confusion: number[][]): LevelMetrics => ({
  n: confusion.flat().reduce((a, b) => a + b, 0),
  accuracy: 0.75,
  macroF1: 0.7,
  perLabel: { '<b>cup</b>': { precision: 0.8, recall: 0.6, f1: 0.69, support: 5 }, other: { precision: null, recall: 0, f1: null, support: 3 } },
  confusion,
});

async function data(over: Partial<RunReportData> = {}): Promise<RunReportData> {
  const sheet = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 0, g: 128, b: 0 } } })
    .jpeg()
    .toBuffer();
  return {
    workflowId: 'retrain-cup-1',
    kind: 'retrain',
    label: '<b>cup</b>',
    status: 'completed',
    startedAt: '2026-01-01T02:30:00.000Z',
    finishedAt: '2026-01-01T02:31:00.000Z',
    input: { label: 'cup' },
    error: null,
    steps: [
      { step: 'search', durationMs: 100, finishedAt: null, summary: { positives: 2, videoIds: ['a'] }, manifestKey: 'k' },
      { step: 'train', durationMs: 5200, finishedAt: null, summary: { epochs: 3, finalLoss: 0.21234 }, manifestKey: 'k' },
      { step: 'evaluate', durationMs: 300, finishedAt: null, summary: { validationFrames: 8, teacher: { frames: { confusion: [[1]] } } }, manifestKey: 'k' },
    ],
    videoFailures: [{ videoId: 'v9', type: 'VideoDecodeError', message: 'cannot decode video "x<script>.mp4": truncated' }],
    search: { positives: 2, negatives: 1 },
    dataset: {
      name: 'cup',
      version: 2,
      labels: ['<b>cup</b>', 'other'],
      counts: { train: { '<b>cup</b>': 10, other: 6 }, validation: { '<b>cup</b>': 5, other: 3 } },
      warnings: ['one warning'],
      videos: { train: ['a', 'b'], validation: ['c'] },
      datasetKey: 'datasets/cup/v2/manifest.json',
      unlabeled: 4,
      sources: { weak: 20, human: 4 },
    },
    contactSheets: [
      { group: 'cup', key: 'runs/x/dedupe/contact-sheet-cup.jpg', bytes: sheet },
      { group: 'other', key: 'runs/x/dedupe/contact-sheet-other.jpg', bytes: null },
    ],
    training: {
      teacher: [
        { epoch: 1, loss: 0.9, valAccuracy: 0.5 },
        { epoch: 2, loss: 0.5, valAccuracy: 0.7 },
        { epoch: 3, loss: 0.3, valAccuracy: 0.75 },
      ],
      student: [
        { epoch: 1, loss: 0.4, valAccuracy: 0.6 },
        { epoch: 2, loss: 0.2, valAccuracy: 0.7 },
      ],
    },
    evaluation: {
      validationFrames: 8,
      validationVideos: 2,
      teacher: {
        frames: level([
          [3, 2],
          [0, 3],
        ]),
        videos: level([
          [1, 0],
          [0, 1],
        ]),
      },
      student: {
        frames: level([
          [4, 1],
          [1, 2],
        ]),
        videos: level([
          [1, 0],
          [1, 0],
        ]),
      },
    },
    models: [{ role: 'teacher', name: 'cup', version: 2, artifactPrefix: 'models/cup/v2/teacher' }],
    where: {
      temporalUi: 'http://ui/namespaces/default/workflows/retrain-cup-1',
      s3Prefix: 's3://b/runs/retrain-cup-1/',
      datasetUri: 's3://b/datasets/cup/v2/manifest.json',
    },
    ...over,
  };
}

test('every section, with charts as SVG and contact sheets inline', async () => {
  const { html, charts, contactSheets } = await renderRunReportHtml(await data(), new Date('2026-01-01T03:00:00Z'));
  // step timings, counts, training curves, precision/recall, 4 confusion matrices
  expect(charts).toBe(8);
  expect(contactSheets).toBe(1);
  expect(html.match(/<svg/g)!.length).toBe(8);
  for (const text of [
    'Failures',
    'VideoDecodeError',
    'Time per step (s)',
    'Labelled frames per label and split',
    'Training loss per epoch',
    'Validation accuracy per epoch',
    'teacher: confusion matrix (frames)',
    'student: confusion matrix (videos)',
    'Precision and recall per label',
    'label sources weak 20, human 4',
    'contact sheet of other missing',
    'data:image/jpeg;base64,',
    'models/cup/v2/teacher/',
  ]) {
    expect(html).toContain(text);
  }
  // The nested evaluation is not dumped into the steps table; the small summary is.
  expect(html).toContain('finalLoss=0.2123');
  expect(html).not.toContain('confusion":[[1]]');
  // Nothing from the data becomes markup.
  expect(html).not.toContain('<b>cup</b>');
  expect(html).not.toContain('x<script>');
  expect(html).toContain('&lt;b&gt;cup&lt;/b&gt;');
  expect(html).not.toMatch(/<script/i);
});

test('a failed run says where and why first; a run with no step yet still renders', async () => {
  const failed = await renderRunReportHtml(
    await data({ status: 'failed', error: { stage: 'train', type: 'TrainingDivergedError', message: 'loss NaN at epoch 3' }, evaluation: null, models: [] }),
  );
  const html = failed.html;
  expect(html.indexOf('The run failed')).toBeLessThan(html.indexOf('<h2>Steps'));
  expect(html).toContain('at <b>train</b>: <b>TrainingDivergedError</b>: loss NaN at epoch 3');
  const cancelled = await renderRunReportHtml(
    await data({ status: 'cancelled', error: { stage: 'extract', type: 'CancelledFailure', message: 'Workflow cancelled' }, evaluation: null, models: [] }),
  );
  expect(cancelled.html).toContain('The run was cancelled at <b>extract</b>');
  expect(cancelled.html).not.toContain('The run failed');
  const empty = await renderRunReportHtml(
    await data({
      steps: [],
      search: null,
      dataset: null,
      contactSheets: [],
      training: { teacher: [], student: [] },
      evaluation: null,
      models: [],
      videoFailures: [],
      status: 'running',
    }),
  );
  expect(empty.charts).toBe(0);
  expect(empty.html).toContain('No step has finished yet.');
});

test('the training-curve chart draws both models from the history', async () => {
  const svg = await renderSvg(
    trainingCurvesSpec({
      teacher: [
        { epoch: 1, loss: 1 },
        { epoch: 2, loss: 0.5 },
      ],
      student: [],
    }),
  );
  expect(svg).toMatch(/^<svg/);
  expect(svg).toContain('Training loss per epoch');
  expect(svg).not.toContain('Validation accuracy'); // no validation accuracy recorded: one chart
});
