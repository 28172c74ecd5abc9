/**
 * The run report: one HTML page per run (`runs/<id>/report.html`) that people open
 * instead of reading logs. Written as a run's last activity and on demand by
 * `reelset runs report <id>`.
 */
import { MissingArtifactError, runReportKey, type RunReportSummary } from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { collectRunReport } from './collect';
import { renderRunReportHtml } from './html';

/**
 * Build a run's report from its Postgres rows and S3 manifests and store it at
 * `runs/<id>/report.html` (overwriting an older one: a report is a view, rebuilt any time).
 *
 * @returns the summary and the page itself.
 * @throws MissingArtifactError (not retried) when the run has no row in `runs`.
 */
export async function buildRunReport(deps: Pick<ActivityDeps, 'store' | 'pool' | 'config'>, workflowId: string): Promise<RunReportSummary & { html: string }> {
  const data = await collectRunReport(deps, workflowId);
  if (!data) throw new MissingArtifactError(`runs table, workflow_id = ${workflowId}`, `run ${JSON.stringify(workflowId)} (it never started a step)`);
  const { html, charts, contactSheets } = await renderRunReportHtml(data);
  const reportKey = runReportKey(workflowId);
  await deps.store.put(reportKey, html, 'text/html; charset=utf-8');
  return { reportKey, bytes: Buffer.byteLength(html), charts, contactSheets, steps: data.steps.length, html };
}

/** Report activities (CPU video task queue). */
export function createReportActivities(deps: ActivityDeps) {
  return {
    /**
     * Write the run's HTML report to `runs/<id>/report.html`: steps and timings, counts per
     * label and split, contact sheets, training curves, confusion matrices, precision and
     * recall per label, failures with their reasons (Vega-Lite charts rendered to SVG).
     * Idempotent (rebuilt from the run's state each time).
     */
    async writeRunReport(input: { workflowId: string }): Promise<RunReportSummary> {
      const { html: _html, ...summary } = await buildRunReport(deps, input.workflowId);
      deps.logger.info({ workflowId: input.workflowId, ...summary }, 'run report written');
      return summary;
    },
  };
}
