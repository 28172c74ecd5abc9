/**
 * Everything a run report shows, gathered from where the run left it: its row and step
 * rows in Postgres, and its step manifests in S3. Works on a run in any state (running,
 * completed, failed): what is missing is simply absent.
 */
import {
  runPrefix,
  stepManifestKey,
  STEPS,
  type DatasetManifest,
  type DatasetStepManifest,
  type DedupeStepManifest,
  type EpochLoss,
  type EvaluateSummary,
  type ExtractStepManifest,
  type PublishedModel,
  type PublishSummary,
  type SearchManifest,
  type StepManifest,
  type TrainStepManifest,
  type VideoFailure,
} from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { repos } from '../../lib/repositories';

/** One step as the report lists it. */
export interface ReportStep {
  step: string;
  durationMs: number | null;
  finishedAt: string | null;
  summary: Record<string, unknown>;
  manifestKey: string;
}

/** What a run report shows. */
export interface RunReportData {
  workflowId: string;
  kind: string;
  label: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  input: unknown;
  /** Why the run failed: the stage, the failure type and its message. */
  error: { stage?: string; type?: string; message: string } | null;
  /** Steps with a row in `run_steps`, in pipeline order. */
  steps: ReportStep[];
  /** Videos whose extraction failed, with the reason. */
  videoFailures: VideoFailure[];
  search: { positives: number; negatives: number; scope?: string } | null;
  dataset:
    | (Pick<DatasetManifest, 'name' | 'version' | 'labels' | 'counts' | 'warnings' | 'videos'> & {
        datasetKey: string;
        unlabeled: number;
        sources?: Record<string, number>;
      })
    | null;
  contactSheets: Array<{ group: string; key: string; bytes: Buffer | null }>;
  training: { teacher: EpochLoss[]; student: EpochLoss[] };
  evaluation: EvaluateSummary | null;
  models: PublishedModel[];
  where: { temporalUi: string; s3Prefix: string; datasetUri: string | null };
}

/**
 * Gather a run's report data.
 *
 * @returns the data, or undefined when the run has no row (never started a step).
 */
export async function collectRunReport(deps: Pick<ActivityDeps, 'store' | 'pool' | 'config'>, workflowId: string): Promise<RunReportData | undefined> {
  const { store, pool, config } = deps;
  const run = await repos.runs.get(pool, workflowId);
  if (!run) return undefined;
  const stepRows = await repos.runs.steps(pool, workflowId);
  const rank = (s: string) => {
    const i = (STEPS as readonly string[]).indexOf(s);
    return i < 0 ? STEPS.length : i;
  };
  const steps: ReportStep[] = stepRows
    .map((r) => ({
      step: r.step,
      durationMs: r.duration_ms,
      finishedAt: r.finished_at?.toISOString() ?? null,
      summary: r.summary ?? {},
      manifestKey: r.manifest_key,
    }))
    .sort((a, b) => rank(a.step) - rank(b.step) || a.step.localeCompare(b.step));
  const has = new Set(steps.map((s) => s.step));
  const get = <M>(step: string) => (has.has(step) ? store.getJson<M>(stepManifestKey(workflowId, step)) : Promise.resolve(undefined));

  const [search, extract, dedupe, datasetStep, train, distill, evaluate, publish] = await Promise.all([
    get<SearchManifest & { scope?: string }>('search'),
    get<ExtractStepManifest>('extract'),
    get<DedupeStepManifest>('dedupe'),
    get<DatasetStepManifest>('dataset'),
    get<TrainStepManifest>('train'),
    get<TrainStepManifest>('distill'),
    get<StepManifest<EvaluateSummary>>('evaluate'),
    get<StepManifest<PublishSummary>>('publish'),
  ]);
  let dataset: RunReportData['dataset'] = null;
  if (datasetStep) {
    const ds = await store.getJson<DatasetManifest & { sources?: Record<string, number> }>(datasetStep.summary.datasetKey);
    if (ds) {
      dataset = {
        name: ds.name,
        version: ds.version,
        labels: ds.labels,
        counts: ds.counts,
        warnings: ds.warnings,
        videos: ds.videos,
        datasetKey: datasetStep.summary.datasetKey,
        unlabeled: ds.unlabeled.length,
        ...(ds.sources ? { sources: ds.sources } : {}),
      };
    }
  }
  const contactSheets: RunReportData['contactSheets'] = [];
  for (const [group, key] of Object.entries(dedupe?.summary.contactSheets ?? {})) {
    contactSheets.push({ group, key, bytes: (await store.get(key)) ?? null });
  }
  const result = run.result ?? {};
  const error =
    run.status === 'failed' || run.status === 'cancelled'
      ? { stage: result['stage'] as string | undefined, type: result['type'] as string | undefined, message: String(result['error'] ?? 'no reason recorded') }
      : null;
  const videoFailures = extract?.failures ?? (result['failures'] as VideoFailure[] | undefined) ?? [];
  return {
    workflowId,
    kind: run.kind,
    label: run.label,
    status: run.status,
    startedAt: run.started_at?.toISOString() ?? null,
    finishedAt: run.finished_at?.toISOString() ?? null,
    input: run.input,
    error,
    steps,
    videoFailures,
    search: search ? { positives: search.summary.positives, negatives: search.summary.negatives, ...(search.scope ? { scope: search.scope } : {}) } : null,
    dataset,
    contactSheets,
    training: { teacher: train?.history ?? [], student: distill?.history ?? [] },
    evaluation: evaluate?.summary ?? null,
    models: publish?.summary.models ?? [],
    where: {
      temporalUi: `${config.TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`,
      s3Prefix: store.uri(`${runPrefix(workflowId)}/`),
      datasetUri: dataset ? store.uri(dataset.datasetKey) : null,
    },
  };
}
