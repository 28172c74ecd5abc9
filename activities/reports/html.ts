/**
 * The run report as one self-contained HTML page: charts inlined as SVG, contact sheets
 * as data URIs, no script and no outside request, so the file opens anywhere (from S3,
 * from a local copy, attached to a ticket).
 */
import sharp from 'sharp';
import { confusionSpec, countsSpec, precisionRecallSpec, renderSvg, stepTimingsSpec, trainingCurvesSpec } from './charts';
import type { RunReportData } from './collect';

/** Escape text for HTML. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const secs = (ms: number | null | undefined) => (ms === null || ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);

/** Contact sheets wider than this are scaled down for the page (the full one stays in S3). */
const SHEET_MAX_WIDTH = 1400;

async function imageDataUri(bytes: Buffer): Promise<string> {
  const meta = await sharp(bytes).metadata();
  const out = (meta.width ?? 0) > SHEET_MAX_WIDTH ? await sharp(bytes).resize({ width: SHEET_MAX_WIDTH }).jpeg({ quality: 80 }).toBuffer() : bytes;
  return `data:image/jpeg;base64,${out.toString('base64')}`;
}

function summaryText(summary: Record<string, unknown>): string {
  return (
    Object.entries(summary)
      .filter(([k, v]) => v !== null && v !== undefined && !['modelPrefix', 'datasetKey', 'labelsFingerprint'].includes(k))
      // Objects only when small and flat (drop counts, per-label counts, sources); evaluations and lists have their own sections.
      .filter(([k, v]) => typeof v !== 'object' || ['dropped', 'perLabel', 'sources', 'overBudget'].includes(k))
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : v}`)
      .join(' ')
  );
}

/** Render the report page and count its charts. */
export async function renderRunReportHtml(d: RunReportData, generatedAt: Date = new Date()): Promise<{ html: string; charts: number; contactSheets: number }> {
  const charts: string[] = [];
  const chart = async (spec: Parameters<typeof renderSvg>[0]) => {
    const svg = await renderSvg(spec);
    charts.push(svg);
    return `<figure class="chart">${svg}</figure>`;
  };
  const parts: string[] = [];
  const duration = d.startedAt && d.finishedAt ? ` in ${((Date.parse(d.finishedAt) - Date.parse(d.startedAt)) / 1000).toFixed(1)} s` : '';
  parts.push(`<h1>${esc(d.kind)} <span class="label">${esc(d.label)}</span> <span class="status ${esc(d.status)}">${esc(d.status)}</span></h1>`);
  parts.push(
    `<p class="meta">workflow <code>${esc(d.workflowId)}</code>; started ${esc(d.startedAt ?? '?')}${d.finishedAt ? `, finished ${esc(d.finishedAt)}${esc(duration)}` : ''}; report written ${esc(generatedAt.toISOString())}</p>`,
  );
  parts.push(
    `<p class="where">Temporal UI: <a href="${esc(d.where.temporalUi)}">${esc(d.where.temporalUi)}</a><br>run manifests: <code>${esc(d.where.s3Prefix)}</code>${d.where.datasetUri ? `<br>dataset: <code>${esc(d.where.datasetUri)}</code>` : ''}</p>`,
  );

  // Failures first: they are why people open a report.
  if (d.error || d.videoFailures.length) {
    parts.push('<h2>Failures</h2>');
    if (d.error)
      parts.push(
        `<p class="error">The run ${d.status === 'cancelled' ? 'was cancelled' : 'failed'}${d.error.stage ? ` at <b>${esc(d.error.stage)}</b>` : ''}: <b>${esc(d.error.type ?? 'Error')}</b>: ${esc(d.error.message)}</p>`,
      );
    if (d.videoFailures.length) {
      parts.push('<p>Videos that failed (the run went on without them):</p><table><tr><th>video</th><th>type</th><th>reason</th></tr>');
      for (const f of d.videoFailures) parts.push(`<tr><td>${esc(f.videoId)}</td><td>${esc(f.type)}</td><td>${esc(f.message)}</td></tr>`);
      parts.push('</table>');
    }
  }

  parts.push('<h2>Steps</h2><table><tr><th>step</th><th>time</th><th>finished</th><th>summary</th></tr>');
  for (const s of d.steps)
    parts.push(
      `<tr><td>${esc(s.step)}</td><td class="num">${esc(secs(s.durationMs))}</td><td>${esc(s.finishedAt ?? '')}</td><td class="summary">${esc(summaryText(s.summary))}</td></tr>`,
    );
  parts.push('</table>');
  if (!d.steps.length) parts.push('<p>No step has finished yet.</p>');
  else parts.push(await chart(stepTimingsSpec(d.steps.map((s) => ({ step: s.step, seconds: (s.durationMs ?? 0) / 1000 })))));

  if (d.search || d.dataset) {
    parts.push('<h2>Data</h2>');
    if (d.search)
      parts.push(
        `<p>Videos searched: ${d.search.positives} of the label, ${d.search.negatives} negatives${d.search.scope ? ` (${esc(d.search.scope)})` : ''}.</p>`,
      );
    if (d.dataset) {
      const ds = d.dataset;
      parts.push(
        `<p>Dataset <b>${esc(ds.name)} v${ds.version}</b>: ${ds.videos.train.length} training and ${ds.videos.validation.length} validation videos (split by video), ${ds.unlabeled} unlabelled near-duplicates for distillation${
          ds.sources
            ? `; label sources ${esc(
                Object.entries(ds.sources)
                  .map(([k, v]) => `${k} ${v}`)
                  .join(', '),
              )}`
            : ''
        }.</p>`,
      );
      parts.push('<table><tr><th>label</th><th>train</th><th>validation</th></tr>');
      for (const l of ds.labels)
        parts.push(`<tr><td>${esc(l)}</td><td class="num">${ds.counts.train[l] ?? 0}</td><td class="num">${ds.counts.validation[l] ?? 0}</td></tr>`);
      parts.push('</table>');
      for (const w of ds.warnings) parts.push(`<p class="warning">warning: ${esc(w)}</p>`);
      parts.push(await chart(countsSpec(ds.counts)));
    }
  }

  let sheets = 0;
  if (d.contactSheets.length) {
    parts.push(
      '<h2>Contact sheets</h2><p>Representatives framed green (sent to labelling), blue (seen by an earlier run), grey (over the label budget); then the biggest near-duplicate clusters with their members.</p>',
    );
    for (const c of d.contactSheets) {
      if (!c.bytes) {
        parts.push(`<p class="warning">contact sheet of ${esc(c.group)} missing: <code>${esc(c.key)}</code></p>`);
        continue;
      }
      sheets++;
      parts.push(`<figure><figcaption>${esc(c.group)}</figcaption><img alt="contact sheet ${esc(c.group)}" src="${await imageDataUri(c.bytes)}"></figure>`);
    }
  }

  if (d.training.teacher.length || d.training.student.length) {
    parts.push('<h2>Training</h2>');
    parts.push(await chart(trainingCurvesSpec(d.training)));
  }

  const e = d.evaluation;
  if (e) {
    parts.push(`<h2>Evaluation</h2><p>${e.validationFrames} validation frames from ${e.validationVideos} videos${e.note ? ` (${esc(e.note)})` : ''}.</p>`);
    const labels = d.dataset?.labels ?? Object.keys(e.teacher?.frames.perLabel ?? e.student?.frames.perLabel ?? {});
    if (e.teacher || e.student) {
      parts.push('<table><tr><th>model</th><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>');
      for (const role of ['teacher', 'student'] as const) {
        const m = e[role];
        if (!m) continue;
        for (const [label, s] of Object.entries(m.frames.perLabel)) {
          parts.push(
            `<tr><td>${role}</td><td>${esc(label)}</td><td class="num">${pct(s.precision)}</td><td class="num">${pct(s.recall)}</td><td class="num">${pct(s.f1)}</td><td class="num">${s.support}</td></tr>`,
          );
        }
        parts.push(
          `<tr class="total"><td>${role}</td><td>all</td><td colspan="4">frame accuracy ${pct(m.frames.accuracy)}, video accuracy ${pct(m.videos.accuracy)}, macro F1 ${pct(m.frames.macroF1)}</td></tr>`,
        );
      }
      parts.push('</table>');
      parts.push(await chart(precisionRecallSpec({ teacher: e.teacher, student: e.student })));
      const mats: string[] = [];
      for (const role of ['teacher', 'student'] as const) {
        const m = e[role];
        if (m) mats.push(await chart(confusionSpec(`${role}: confusion matrix (frames)`, labels, m.frames)));
        if (m) mats.push(await chart(confusionSpec(`${role}: confusion matrix (videos)`, labels, m.videos)));
      }
      parts.push(`<div class="row">${mats.join('')}</div>`);
    }
  }

  if (d.models.length) {
    parts.push('<h2>Models</h2><ul>');
    for (const m of d.models) parts.push(`<li>${esc(m.role)} <b>${esc(m.name)} v${m.version}</b>: <code>${esc(m.artifactPrefix)}/</code> (candidate)</li>`);
    parts.push('</ul>');
  }

  parts.push(`<h2>Input</h2><pre>${esc(JSON.stringify(d.input, null, 2))}</pre>`);

  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reelset ${esc(d.kind)} ${esc(d.label)}: ${esc(d.workflowId)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1 .label{color:#4c78a8} .status{font-size:60%;padding:2px 8px;border-radius:4px;background:#eee;vertical-align:middle}
.status.completed{background:#d4edda}.status.failed{background:#f8d7da}.status.cancelled{background:#e2e3e5}.status.running{background:#fff3cd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.summary{font-family:monospace;font-size:12px}
tr.total td{background:#f6f6f6}.error{background:#f8d7da;padding:8px}.warning{color:#8a5a00}
figure{margin:12px 0}img{max-width:100%;border:1px solid #ddd}.row{display:flex;flex-wrap:wrap;gap:16px}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}code{font-size:90%}
</style></head><body>
${parts.join('\n')}
</body></html>
`;
  return { html, charts: charts.length, contactSheets: sheets };
}
