/**
 * Nightly retraining: {@link retrainWorkflow} brings one label's model up to date with
 * what arrived since its last dataset; {@link retrainAllWorkflow} runs it for every label
 * with a published model (what the Temporal Schedule starts).
 */
import {
  ContinueAsNew,
  continueAsNew,
  executeChild,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { VideoActivities } from '../activities';
import {
  failureOf,
  LABEL_ATTRIBUTE,
  RetrainAllInput,
  retrainAllProgressQuery,
  retrainChildWorkflowId,
  RetrainFailedError,
  RetrainInput,
  runPrefix,
  SHORT,
  STAGE_ATTRIBUTE,
  type ContinueState,
  type NewCategoryInput,
  type NewCategoryResult,
  type PublishedModel,
  type PromotionDecision,
  type RetrainAllProgress,
  type RetrainAllRequest,
  type RetrainAllResult,
  type RetrainAllState,
  type RetrainLabelOutcome,
  type RetrainPlan,
  type RetrainRequest,
  type RetrainResult,
} from '../contracts';
import { fanOut, FanOutPool } from './fan-out';
import { parseInput } from './parse-input';
import { PROMOTION_GATE_PATCH } from './patches';
import { counted, embedAndDedupe, extractStep, finishFailedRun, labelStep, trackRun, trainAndPublish, writeReport } from './pipeline';
import { promotionStep } from './promotion';

/** What a retrain carries through continue-as-new (during its extraction fan-out). */
export interface RetrainContinueState {
  plan: RetrainPlan;
  extract: ContinueState;
  activities: number;
}

/**
 * The promotion gate (issue 13): the published student is evaluated with the production
 * model on the label's fixed evaluation set and promoted only when the gate passes
 * (`workflows/promotion.ts`); otherwise the decision says which rule held it back.
 */
async function promotionGate(
  workflowId: string,
  models: PublishedModel[],
  input: Pick<NewCategoryInput, 'heartbeatTimeoutS' | 'gpuTaskQueue'>,
  counter: { n: number },
): Promise<PromotionDecision> {
  if (!patched(PROMOTION_GATE_PATCH)) {
    return { decision: 'not-evaluated', note: 'published as candidates; recorded before the promotion gate existed' };
  }
  const student = models.find((m) => m.role === 'student');
  if (!student) return { decision: 'not-evaluated', note: 'no student was published: nothing to promote' };
  const out = await promotionStep(workflowId, student.name, student.version, {
    heartbeatTimeoutS: input.heartbeatTimeoutS,
    gpuTaskQueue: input.gpuTaskQueue,
    counter,
  });
  return { decision: out.decision, note: out.gate.reason, gate: out.gate, production: out.production };
}

/**
 * Retrain one label on what arrived since the dataset its published model was trained on.
 *
 * 1. `planRetrain` (one activity, reads Postgres): catalog videos of the label that no
 *    run of the label has used yet (and, when there are some, new negatives), and whether
 *    the label's labelled frames changed (new or changed human labels, frames of runs
 *    after that dataset). Nothing changed and not `force`: the run ends here with
 *    outcome `unchanged`; it wrote nothing and its cost is in the result.
 * 2. Otherwise, with the parameters of the label's last run (overridden by `overrides`):
 *    the new videos only are extracted (children), embedded and deduplicated against the
 *    label's near-duplicate index; only new unique frames go to labelling (to people in
 *    Label Studio when the label's `labeling.mode` is `human`: the run then waits for
 *    them in the child `<id>/label`, as new-category does; `weak` waits for nobody); the next
 *    dataset version is built from **everything labelled so far** for the label; then
 *    teacher, student, evaluation, and candidates published. The promotion gate's place
 *    is marked ({@link promotionGate}).
 *
 * Every step checkpoints in S3 like new-category's, so a retried or reset run resumes.
 * Invalid input fails at once (`InvalidInputError`, not retried).
 */
export async function retrainWorkflow(request: RetrainRequest, state?: RetrainContinueState): Promise<RetrainResult> {
  const req = parseInput(RetrainInput, request, 'retrain');
  const info = workflowInfo();
  const { workflowId } = info;
  const counter = { n: state?.activities ?? 0 };
  const cpu = counted(proxyActivities<VideoActivities>(SHORT), counter);
  const cost = () => ({ wallMs: Date.now() - info.startTime.getTime(), activities: counter.n });

  let plan = state?.plan;
  if (!plan) {
    upsertSearchAttributes([
      { key: LABEL_ATTRIBUTE, value: req.label },
      { key: STAGE_ATTRIBUTE, value: 'search' },
    ]);
    plan = await cpu.planRetrain({ workflowId, label: req.label, force: req.force, overrides: req.overrides });
  }
  const base = { workflowId, label: plan.label, reasons: plan.reasons, newVideos: plan.newVideos, labelledFrames: plan.labels.labelledFrames };
  if (!plan.changed) {
    upsertSearchAttributes([
      { key: LABEL_ATTRIBUTE, value: plan.label },
      { key: STAGE_ATTRIBUTE, value: 'unchanged' },
    ]);
    log.info('nothing changed: retrain is a no-op', { label: plan.label, reasons: plan.reasons });
    return { ...base, outcome: 'unchanged', cost: cost() };
  }

  const input = plan.input;
  const run = trackRun(plan.label, state?.extract, counter);
  try {
    run.stage('search');
    if (!state) await cpu.startRun({ workflowId, kind: 'retrain', label: plan.label, input });
    const search = await cpu.searchNewVideos({
      workflowId,
      label: plan.label,
      maxPositiveVideos: input.maxPositiveVideos,
      maxNegativeVideos: input.maxNegativeVideos,
      seed: input.seed,
    });
    run.done('search', search);

    let failures: NewCategoryResult['failures'] = [];
    if (search.videoIds.length) {
      run.stage('extract');
      const planned = plan;
      const ex = await extractStep(run, {
        workflowId,
        videoIds: search.videoIds,
        input,
        state: state?.extract,
        continueAsNew: (s) => continueAsNew<typeof retrainWorkflow>(request, { plan: planned, extract: s, activities: counter.n }),
      });
      failures = ex.failures;
      if (ex.extract.frames > 0) {
        await embedAndDedupe(run, workflowId, input);
        // The label's labelling mode (its last run's, or the overrides'): with `human`,
        // only the new unique frames go to people, and the retrain waits for them.
        await labelStep(run, workflowId, input);
      } else {
        log.warn('no usable frame in the new videos; the dataset is rebuilt from the labels there are', { failures: failures.length });
      }
    }

    run.stage('dataset');
    const dataset = await cpu.buildLabelDataset({ workflowId, label: plan.label, validationFraction: input.validationFraction, seed: input.seed });
    run.done('dataset', dataset);
    const publish = await trainAndPublish(run, workflowId, input);

    // The promotion gate: compare the candidate with production on the fixed set; promote only on a win.
    const promotion = await promotionGate(workflowId, publish.models, input, counter);

    const detail: RetrainResult['run'] = {
      runPrefix: runPrefix(workflowId),
      steps: run.steps,
      failures,
      dataset: { name: dataset.name, version: dataset.version, datasetKey: dataset.datasetKey, counts: dataset.counts, warnings: dataset.warnings },
      models: publish.models,
      evaluation: publish.evaluation,
    };
    run.stage('done');
    await cpu.finishRun({ workflowId, status: 'completed', result: { ...base, outcome: 'retrained', run: detail, promotion } });
    const reportKey = await writeReport(workflowId, counter);
    return { ...base, outcome: 'retrained', cost: cost(), run: detail, promotion, ...(reportKey ? { reportKey } : {}) };
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    await finishFailedRun(run, workflowId, err);
    await writeReport(workflowId, counter);
    throw err;
  }
}

/** One label's line in the fan-out's result, from its retrain's result. */
function labelOutcome(label: string, workflowId: string, r: RetrainResult): RetrainLabelOutcome {
  return {
    label,
    workflowId,
    outcome: r.outcome,
    reasons: r.reasons,
    ...(r.run
      ? {
          models: r.run.models,
          dataset: { version: r.run.dataset.version, counts: r.run.dataset.counts },
          evaluation: {
            validationFrames: r.run.evaluation.validationFrames,
            validationVideos: r.run.evaluation.validationVideos,
            teacherAccuracy: r.run.evaluation.teacher?.frames.accuracy ?? null,
            studentAccuracy: r.run.evaluation.student?.frames.accuracy ?? null,
          },
          failures: r.run.failures,
        }
      : {}),
  };
}

/**
 * Retrain every label with a published model (or the labels given), `concurrency` at a
 * time, one {@link retrainWorkflow} child per label (`<id>/retrain/<label>`). A label that
 * fails does not stop the others; when every label has finished and one or more failed,
 * the run fails with `RetrainFailedError` naming them (its details hold the whole result),
 * so the schedule's "last results" show it and pause-on-failure can act. Continues as new
 * when the history grows.
 */
export async function retrainAllWorkflow(request: RetrainAllRequest = {}, state?: RetrainAllState): Promise<RetrainAllResult> {
  const input = parseInput(RetrainAllInput, request, 'retrain-all');
  const { workflowId } = workflowInfo();
  const cpu = proxyActivities<VideoActivities>(SHORT);
  upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'retrain' }]);

  // Each label once: a label listed twice would start two children with one id.
  const labels = state?.labels ?? [...new Set(await cpu.listRetrainLabels({ labels: input.labels }))];
  const done: RetrainLabelOutcome[] = [...(state?.done ?? [])];
  const running = new Set<string>();
  const progress = (): RetrainAllProgress => ({ total: labels.length, running: [...running], done: done.map((d) => ({ label: d.label, outcome: d.outcome })) });
  setHandler(retrainAllProgressQuery, progress);

  const pool = new FanOutPool<string, RetrainResult>({
    concurrency: input.concurrency,
    start: (label) => {
      running.add(label);
      return executeChild(retrainWorkflow, {
        workflowId: retrainChildWorkflowId(workflowId, label),
        args: [{ label, force: input.force, overrides: input.overrides }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
    },
    onSuccess: (label, r) => done.push(labelOutcome(label, retrainChildWorkflowId(workflowId, label), r)),
    onFailure: (label, err) => {
      const error = failureOf(err);
      done.push({ label, workflowId: retrainChildWorkflowId(workflowId, label), outcome: 'failed', error });
      log.warn('retrain of a label failed; the others go on', { label, ...error });
    },
    onSettled: (label) => running.delete(label),
  });
  const out = await fanOut(pool, labels, { cursor: state?.cursor ?? 0 });
  if (!out.done) await continueAsNew<typeof retrainAllWorkflow>(request, { labels, cursor: out.cursor, done });

  const counts = { retrained: 0, unchanged: 0, failed: 0 };
  for (const d of done) counts[d.outcome]++;
  const result: RetrainAllResult = { workflowId, labels: done, counts };
  if (counts.failed > 0) {
    upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'failed' }]);
    const failed = done.filter((d) => d.outcome === 'failed');
    throw new RetrainFailedError(
      `${counts.failed} of ${labels.length} labels failed to retrain: ${failed.map((d) => `${d.label} (${d.error?.type}: ${d.error?.message})`).join('; ')}`,
      { details: [result] },
    );
  }
  upsertSearchAttributes([{ key: STAGE_ATTRIBUTE, value: 'done' }]);
  return result;
}
