import type { NewCategoryResult, StepReport } from '../contracts';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '  n/a' : `${(100 * x).toFixed(1).padStart(5)}%`);

/**
 * Render a new-category result for people: per-step counts and timings, where the
 * dataset and models are, the evaluation, and where to look.
 */
export function formatSummary(r: NewCategoryResult, where: { temporalUi: string; namespace: string; bucket: string }): string {
  const lines: string[] = [];
  lines.push(`new-category "${r.label}"  (workflow ${r.workflowId})`, '');
  lines.push('step       time      reused  summary');
  for (const [step, s] of Object.entries(r.steps) as Array<[string, StepReport]>) {
    const summary = Object.entries(s.summary)
      .filter(([k, v]) => typeof v !== 'object' || v === null || ['dropped', 'perLabel', 'sources', 'features', 'fineTune'].includes(k))
      .filter(([k]) => !['videoIds', 'modelPrefix', 'manifestKey', 'datasetKey', 'label'].includes(k))
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : v}`)
      .join(' ');
    lines.push(`${step.padEnd(10)} ${(s.durationMs / 1000).toFixed(1).padStart(6)} s  ${s.reused ? 'yes' : 'no '}     ${summary}`);
  }
  lines.push('');
  if (r.failures.length) {
    lines.push(`videos that failed (the run went on without them):`);
    for (const f of r.failures) lines.push(`  ${f.videoId}: ${f.type}: ${f.message}`);
    lines.push('');
  }
  const d = r.dataset;
  lines.push(`dataset ${d.name} v${d.version}: s3://${where.bucket}/${d.datasetKey}`);
  for (const split of Object.keys(d.counts) as Array<keyof typeof d.counts>)
    lines.push(
      `  ${split.padEnd(10)} ${Object.entries(d.counts[split] ?? {})
        .map(([l, n]) => `${l}=${n}`)
        .join(' ')}`,
    );
  for (const w of d.warnings) lines.push(`  warning: ${w}`);
  lines.push('');
  for (const m of r.models) lines.push(`model ${m.role.padEnd(7)} ${m.name} v${m.version}: s3://${where.bucket}/${m.artifactPrefix}/`);
  lines.push('');
  const e = r.evaluation;
  lines.push(`evaluation on ${e.validationFrames} validation frames from ${e.validationVideos} videos${e.note ? ` (${e.note})` : ''}:`);
  for (const role of ['teacher', 'student', 'studentBeforeFineTune'] as const) {
    const m = e[role];
    if (!m) continue;
    const name = role === 'studentBeforeFineTune' ? 'student before its backbone was fine-tuned' : role;
    lines.push(`  ${name}: frame accuracy ${pct(m.frames.accuracy)}, video accuracy ${pct(m.videos.accuracy)}`);
    for (const [label, s] of Object.entries(m.frames.perLabel)) {
      lines.push(`    ${label.padEnd(16)} precision ${pct(s.precision)}  recall ${pct(s.recall)}  support ${s.support}`);
    }
  }
  lines.push('');
  lines.push(`where to look:`);
  lines.push(`  Temporal UI: ${where.temporalUi}/namespaces/${where.namespace}/workflows/${encodeURIComponent(r.workflowId)}`);
  const labelling = r.steps.label?.summary as { projectUrl?: string } | undefined;
  if (labelling?.projectUrl) lines.push(`  Label Studio (where people label ${r.label}): ${labelling.projectUrl}`);
  lines.push(`  run manifests: s3://${where.bucket}/${r.runPrefix}/`);
  return lines.join('\n');
}
