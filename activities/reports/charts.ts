/**
 * The report's charts: Vega-Lite specifications (https://vega.github.io/vega-lite/)
 * compiled to Vega and rendered to SVG strings in Node by Vega's headless view (no
 * browser, no canvas: text widths are estimated). One function per chart; each returns
 * the SVG markup, ready to inline in HTML.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { EpochLoss, Evaluation, LevelMetrics } from '../../contracts';

type Spec = vl.TopLevelSpec;

const CONFIG = {
  font: 'sans-serif',
  view: { stroke: 'transparent' },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 13, anchor: 'start' as const },
};

/**
 * Render a Vega-Lite spec to SVG.
 *
 * @throws the compiler's or the renderer's error on an invalid spec.
 */
export async function renderSvg(spec: Spec): Promise<string> {
  const compiled = vl.compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as Spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Horizontal bars: seconds per step. */
export function stepTimingsSpec(steps: Array<{ step: string; seconds: number }>): Spec {
  return {
    title: 'Time per step (s)',
    width: 520,
    height: { step: 18 },
    data: { values: steps },
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      y: { field: 'step', type: 'nominal', sort: null, title: null },
      x: { field: 'seconds', type: 'quantitative', title: 'seconds' },
      tooltip: [{ field: 'step' }, { field: 'seconds', format: '.2f' }],
    },
  };
}

/**
 * Training curves: loss per epoch of teacher and student, and (when recorded) their
 * validation accuracy per epoch, side by side.
 */
export function trainingCurvesSpec(history: { teacher: EpochLoss[]; student: EpochLoss[] }): Spec {
  const rows = (['teacher', 'student'] as const).flatMap((model) =>
    history[model].map((h) => ({ model, epoch: h.epoch, loss: h.loss, valAccuracy: h.valAccuracy ?? null })),
  );
  const hasVal = rows.some((r) => r.valAccuracy !== null);
  const lossView = {
    title: 'Training loss per epoch',
    width: 320,
    height: 220,
    mark: { type: 'line', point: rows.length <= 120 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
      y: { field: 'loss', type: 'quantitative', title: 'loss (nats)' },
      color: { field: 'model', type: 'nominal', scale: { domain: ['teacher', 'student'] } },
    },
  };
  if (!hasVal) return { data: { values: rows }, ...lossView } as Spec;
  return {
    data: { values: rows },
    hconcat: [
      lossView,
      {
        title: 'Validation accuracy per epoch (frames)',
        width: 320,
        height: 220,
        transform: [{ filter: 'datum.valAccuracy !== null' }],
        mark: { type: 'line', point: rows.length <= 120 },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
          y: { field: 'valAccuracy', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] }, axis: { format: '%' } },
          color: { field: 'model', type: 'nominal', scale: { domain: ['teacher', 'student'] } },
        },
      },
    ],
  } as Spec;
}

/** A confusion matrix as a heat map: true class (rows) by predicted class (columns), counts written in the cells. */
export function confusionSpec(title: string, labels: string[], m: LevelMetrics): Spec {
  const values = m.confusion.flatMap((row, t) => row.map((count, p) => ({ truth: labels[t] ?? String(t), predicted: labels[p] ?? String(p), count })));
  const side = Math.max(120, Math.min(420, 48 * labels.length));
  return {
    title,
    width: side,
    height: side,
    data: { values },
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: labels, title: 'predicted', axis: { labelAngle: -30 } },
      y: { field: 'truth', type: 'nominal', sort: labels, title: 'true' },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'count', type: 'quantitative', scale: { scheme: 'blues' }, title: 'count' } } },
      {
        mark: { type: 'text', fontSize: 12 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.count > ${Math.max(...values.map((v) => v.count), 1) / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  } as Spec;
}

/** Per-label precision and recall (frame level) of teacher and student, grouped bars; labels without a value are left out. */
export function precisionRecallSpec(evals: { teacher: Evaluation | null; student: Evaluation | null }): Spec {
  const values: Array<{ model: string; label: string; metric: string; value: number }> = [];
  for (const model of ['teacher', 'student'] as const) {
    const e = evals[model];
    if (!e) continue;
    for (const [label, s] of Object.entries(e.frames.perLabel)) {
      if (s.precision !== null) values.push({ model, label, metric: 'precision', value: s.precision });
      if (s.recall !== null) values.push({ model, label, metric: 'recall', value: s.recall });
    }
  }
  return {
    title: 'Precision and recall per label (validation frames)',
    data: { values },
    facet: { column: { field: 'model', type: 'nominal', title: null, sort: ['teacher', 'student'] } },
    spec: {
      width: 240,
      height: 180,
      mark: 'bar',
      encoding: {
        x: { field: 'label', type: 'nominal', title: null, axis: { labelAngle: -30 } },
        xOffset: { field: 'metric', type: 'nominal' },
        y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '%' }, title: null },
        color: { field: 'metric', type: 'nominal', scale: { domain: ['precision', 'recall'], range: ['#4c78a8', '#f58518'] } },
        tooltip: [{ field: 'model' }, { field: 'label' }, { field: 'metric' }, { field: 'value', format: '.1%' }],
      },
    },
  } as Spec;
}

/** Frames per label and split, stacked bars. */
export function countsSpec(counts: Record<string, Record<string, number>>): Spec {
  const values = Object.entries(counts).flatMap(([split, per]) => Object.entries(per).map(([label, frames]) => ({ split, label, frames })));
  return {
    title: 'Labelled frames per label and split',
    width: 320,
    height: { step: 22 },
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'label', type: 'nominal', title: null },
      x: { field: 'frames', type: 'quantitative', title: 'frames', stack: 'zero' },
      color: { field: 'split', type: 'nominal', scale: { domain: ['train', 'validation'], range: ['#4c78a8', '#72b7b2'] } },
    },
  };
}
