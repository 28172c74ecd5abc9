/** `reelset runs show <id>`: one run's steps, durations, failures, artefacts and where to look. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  failureOf,
  LABEL_ATTRIBUTE,
  progressQuery,
  retrainAllProgressQuery,
  runPrefix,
  runReportKey,
  STAGE_ATTRIBUTE,
  STEPS,
  type Progress,
  type RetrainAllProgress,
} from '../../contracts';
import { loadConfig, type Config } from '../../lib/config';
import { repos } from '../../lib/repositories';
import { dataClients, EXIT, printJson, redactedDatabaseUrl, temporalClient, UsageError, workflowUrl } from '../common';

/** A run as `runs show` reports it. */
export interface RunView {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
  label: string | null;
  stage: string | null;
  startTime: string;
  closeTime: string | null;
  /** Where a running run is (its query), when it answers. */
  progress?: Progress | RetrainAllProgress;
  /** Steps recorded in Postgres, in pipeline order. */
  steps: Array<{ step: string; durationMs: number | null; finishedAt: string | null; summary: Record<string, unknown> }>;
  /** Activities running now or retrying: type, attempt, last failure. */
  pendingActivities: Array<{ activity: string; state: string; attempt: number; lastFailure?: string; lastHeartbeat?: string }>;
  /** Why the run failed (the innermost failure), and videos that failed while it went on. */
  failure?: { type: string; message: string };
  videoFailures: Array<{ videoId: string; type: string; message: string }>;
  /** The run's result, when it completed. */
  result?: unknown;
  artefacts: { dataset?: string; models: string[]; contactSheets: string[]; report?: string };
  where: { temporalUi: string; manifests: string; logs: string[]; report: string };
  /** Parts that could not be read (a service down), with why. */
  notes: string[];
}

const rank = (s: string) => {
  const i = (STEPS as readonly string[]).indexOf(s);
  return i < 0 ? STEPS.length : i;
};

/**
 * Gather a run's view from Temporal (status, result or failure, pending activities,
 * progress query) and from Postgres and S3 (steps, artefacts). Postgres or S3 being
 * unreachable is a note, not a failure.
 *
 * @throws UsageError when no workflow has this id.
 */
export async function runView(client: Client, config: Config, workflowId: string): Promise<RunView> {
  const handle = client.workflow.getHandle(workflowId);
  let desc;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new UsageError(`no run with workflow id ${JSON.stringify(workflowId)} in namespace ${config.TEMPORAL_NAMESPACE}`);
    throw err;
  }
  const status = desc.status.name.toLowerCase();
  const view: RunView = {
    workflowId,
    runId: desc.runId,
    type: desc.type,
    status,
    label: desc.typedSearchAttributes.get(LABEL_ATTRIBUTE) ?? null,
    stage: desc.typedSearchAttributes.get(STAGE_ATTRIBUTE) ?? null,
    startTime: desc.startTime.toISOString(),
    closeTime: desc.closeTime?.toISOString() ?? null,
    steps: [],
    pendingActivities: (desc.raw.pendingActivities ?? []).map((a) => ({
      activity: a.activityType?.name ?? '?',
      state: String(a.state ?? '')
        .replace('PENDING_ACTIVITY_STATE_', '')
        .toLowerCase(),
      attempt: a.attempt ?? 1,
      ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
      ...(a.lastHeartbeatTime?.seconds ? { lastHeartbeat: new Date(Number(a.lastHeartbeatTime.seconds) * 1000).toISOString() } : {}),
    })),
    videoFailures: [],
    artefacts: { models: [], contactSheets: [] },
    where: {
      temporalUi: workflowUrl(config, workflowId),
      manifests: `s3://${config.S3_BUCKET}/${runPrefix(workflowId)}/`,
      logs: [path.join(config.REELSET_LOG_DIR, 'worker-video.log'), path.join(config.REELSET_LOG_DIR, 'worker-gpu.log')],
      report: `reelset runs report ${workflowId}`,
    },
    notes: [],
  };
  if (status === 'running') {
    const q = desc.type === 'retrainAllWorkflow' ? handle.query(retrainAllProgressQuery) : handle.query(progressQuery);
    view.progress = await Promise.race([q, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000))]).catch((err: unknown) => {
      view.notes.push(`progress query: ${(err as Error).message}`);
      return undefined;
    });
    if (!view.progress) view.notes.push('progress query did not answer (is a worker polling the task queue?)');
  } else if (status === 'completed') {
    view.result = await handle.result();
  } else {
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err) view.failure = failureOf(err);
  }
  const result = (view.result ?? {}) as Record<string, unknown>;
  const detail = (result['run'] ?? result) as Record<string, unknown>;
  if (Array.isArray(detail['failures'])) view.videoFailures = detail['failures'] as RunView['videoFailures'];

  // Steps and artefacts from Postgres and S3 (a no-op retrain has none).
  const { pool, store, close } = await dataClients(config, { max: 1, check: false });
  try {
    view.steps = (await repos.runs.steps(pool, workflowId))
      .map((r) => ({ step: r.step, durationMs: r.duration_ms, finishedAt: r.finished_at?.toISOString() ?? null, summary: r.summary ?? {} }))
      .sort((a, b) => rank(a.step) - rank(b.step));
    const run = await repos.runs.get(pool, workflowId);
    if ((run?.status === 'failed' || run?.status === 'cancelled') && !view.failure && run.result)
      view.failure = { type: String(run.result['type'] ?? 'Error'), message: String(run.result['error'] ?? '') };
    const ds = view.steps.find((s) => s.step === 'dataset')?.summary;
    if (ds?.['datasetKey']) view.artefacts.dataset = `s3://${config.S3_BUCKET}/${String(ds['datasetKey'])}`;
    view.artefacts.models = (await repos.models.ofRun(pool, workflowId)).map(
      (m) => `${m.role} ${m.name} v${m.version} (${m.stage}): s3://${config.S3_BUCKET}/${m.artifact_prefix}/`,
    );
    const sheets = view.steps.find((s) => s.step === 'dedupe')?.summary['contactSheets'];
    if (sheets && typeof sheets === 'object')
      view.artefacts.contactSheets = Object.values(sheets as Record<string, string>).map((k) => `s3://${config.S3_BUCKET}/${k}`);
  } catch (err) {
    view.notes.push(`Postgres at ${redactedDatabaseUrl(config)}: ${(err as Error).message}`);
  }
  try {
    const key = runReportKey(workflowId);
    if ((await store.head(key)) !== undefined) view.artefacts.report = store.uri(key);
  } catch (err) {
    view.notes.push(`S3 at ${config.S3_ENDPOINT}: ${(err as Error).message}`);
  } finally {
    await close();
  }
  return view;
}

function printView(v: RunView): void {
  const lines: string[] = [];
  lines.push(`${v.workflowId}  (${v.type}${v.label ? `, label ${v.label}` : ''})`);
  lines.push(`  status ${v.status}${v.stage ? `, stage ${v.stage}` : ''}; started ${v.startTime}${v.closeTime ? `, closed ${v.closeTime}` : ''}`);
  if (v.progress && 'stepsDone' in v.progress) {
    const p = v.progress;
    lines.push(
      `  progress: ${p.stage}; done ${p.stepsDone.join(', ') || '-'}; videos ${p.videos.extracted + p.videos.failed}/${p.videos.total} (${p.videos.failed} failed, ${p.videos.running} running)`,
    );
  } else if (v.progress) {
    const p = v.progress;
    lines.push(`  progress: ${p.done.length}/${p.total} labels done; running ${p.running.join(', ') || '-'}`);
  }
  if (v.failure) lines.push('', `failure: ${v.failure.type}: ${v.failure.message}`);
  for (const a of v.pendingActivities) {
    lines.push(
      `  pending activity ${a.activity}: ${a.state}, attempt ${a.attempt}${a.lastHeartbeat ? `, last heartbeat ${a.lastHeartbeat}` : ''}${a.lastFailure ? `, last failure: ${a.lastFailure}` : ''}`,
    );
  }
  if (v.steps.length) {
    lines.push('', 'step       time      summary');
    for (const s of v.steps) {
      const summary = Object.entries(s.summary)
        .filter(
          ([k, val]) =>
            !['videoIds', 'modelPrefix', 'datasetKey', 'contactSheets', 'models', 'evaluation', 'counts', 'labels', 'labelsFingerprint'].includes(k) &&
            val !== null &&
            typeof val !== 'object',
        )
        .map(([k, val]) => `${k}=${typeof val === 'number' && !Number.isInteger(val) ? val.toFixed(4) : val}`)
        .join(' ');
      lines.push(`${s.step.padEnd(10)} ${s.durationMs === null ? '      ' : ((s.durationMs ?? 0) / 1000).toFixed(1).padStart(6)} s  ${summary}`);
    }
  }
  const r = v.result as Record<string, unknown> | undefined;
  if (r && v.type === 'retrainWorkflow') {
    lines.push('', `outcome: ${r['outcome']}; ${(r['reasons'] as string[] | undefined)?.join('; ') ?? ''}`);
    const cost = r['cost'] as { wallMs: number; activities: number } | undefined;
    if (cost) lines.push(`cost: ${(cost.wallMs / 1000).toFixed(2)} s wall, ${cost.activities} activities`);
    const promotion = r['promotion'] as { note?: string } | undefined;
    if (promotion?.note) lines.push(`promotion: ${promotion.note}`);
  }
  if (r && v.type === 'retrainAllWorkflow') {
    const labels = (r['labels'] as Array<{ label: string; outcome: string; workflowId: string; reasons?: string[] }>) ?? [];
    lines.push('', 'label            outcome     run');
    for (const l of labels) lines.push(`${l.label.padEnd(16)} ${l.outcome.padEnd(11)} ${l.workflowId}${l.reasons?.length ? `  (${l.reasons[0]})` : ''}`);
  }
  if (v.videoFailures.length) {
    lines.push('', 'videos that failed (the run went on without them):');
    for (const f of v.videoFailures) lines.push(`  ${f.videoId}: ${f.type}: ${f.message}`);
  }
  const a = v.artefacts;
  if (a.dataset || a.models.length || a.contactSheets.length || a.report) {
    lines.push('', 'artefacts:');
    if (a.dataset) lines.push(`  dataset: ${a.dataset}`);
    for (const m of a.models) lines.push(`  model ${m}`);
    for (const c of a.contactSheets) lines.push(`  contact sheet: ${c}`);
    if (a.report) lines.push(`  report: ${a.report}`);
  }
  lines.push(
    '',
    'where to look:',
    `  Temporal UI: ${v.where.temporalUi}`,
    `  run manifests: ${v.where.manifests}`,
    `  worker logs: ${v.where.logs.join(', ')}`,
    `  report: ${v.where.report}`,
  );
  for (const n of v.notes) lines.push(`  note: ${n}`);
  console.log(lines.join('\n'));
}

/** Register `runs show` on the `runs` command. */
export function registerRunsShow(runs: Command): void {
  runs
    .command('show')
    .description('one run: status, steps with durations, failures, artefacts, where to look')
    .argument('<workflowId>')
    .option('--json', 'print the run as JSON')
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      const config = loadConfig();
      const { client, close } = await temporalClient(config);
      try {
        const view = await runView(client, config, workflowId);
        if (opts.json) printJson(view);
        else printView(view);
        if (view.status === 'failed' || view.status === 'terminated' || view.status === 'timed_out') process.exitCode = EXIT.failed;
      } finally {
        await close();
      }
    });
}
