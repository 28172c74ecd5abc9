import { condition, continueAsNew, isCancellation, log, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { TrainingActivities, VideoActivities } from '../activities';
import {
  DEFAULT_RETRY,
  failureOf,
  finishLabelingSignal,
  LabelingDeadlineError,
  labelingEventSignal,
  labelingProgressQuery,
  long,
  SHORT,
  type LabelingCounts,
  type LabelingInput,
  type LabelingProgress,
  type LabelSummary,
  type PrepareLabelingResult,
  type StepResult,
} from '../contracts';

/** Signals arriving within this window after the first are synced together (a person labelling fast makes bursts). */
export const SIGNAL_BATCH_MS = 1000;
/** Above this many pending annotation ids, one full reconciliation replaces fetching them one by one. */
export const MAX_PENDING_IDS = 500;

/** What the labelling workflow carries through continue-as-new. */
export interface LabelingState {
  prepared: PrepareLabelingResult;
  /** When the first run of the chain started (the step's duration is the whole wait). */
  startedAtMs: number;
  deadlineAtMs: number;
  pending: { annotationIds: number[]; deletedAnnotationIds: number[]; full: boolean };
  counts: LabelingCounts;
  syncErrors: number;
  lastSyncAt: string | null;
  lastSyncError: string | null;
  finishRequested: boolean;
}

const NO_COUNTS: LabelingCounts = {
  tasks: 0,
  done: 0,
  labelled: 0,
  annotations: 0,
  validation: { tasks: 0, done: 0, pairs: 0, agreement: null, kappa: null, disagreements: 0 },
};

/**
 * Child workflow of a `human` new-category run (id `<run>/label`): send the run's
 * representatives to people in Label Studio and wait for them, durably.
 *
 * 1. `predictFrames` (GPU queue): the label's published model, if any, predicts the
 *    frames (pre-annotations, and the order: most uncertain first).
 * 2. `prepareLabeling`: the label's project, the tasks, the deadline (fixed at the first
 *    start, carried through continue-as-new).
 * 3. Wait. The gateway signals `labelingEvent` for each webhook (ids only); signals
 *    within {@link SIGNAL_BATCH_MS} are synced in one `syncLabeling`. Every
 *    `reconcileIntervalS` without a signal, a full reconciliation polls Label Studio's
 *    API, which finds whatever a lost webhook did not say (Label Studio sends webhooks
 *    once, with a 1 s timeout). Annotation ids are the idempotency key of every write, so
 *    a replayed signal, a retried activity or a restarted worker neither loses nor
 *    doubles a label. A failed sync (Label Studio down) is counted and retried at the
 *    next interval; the wait goes on. The history stays bounded: after
 *    `continueAfterSyncs` syncs (or when Temporal suggests it) the workflow continues as
 *    new with its state (pending ids included).
 * 4. The wait ends when every task is done, on the `finishLabeling` signal, or at the
 *    deadline. At the deadline the policy decides: `proceed` finishes with people's
 *    labels and weak labels for the rest (marked `weak`), `fail` fails the run with a
 *    non-retryable `LabelingDeadlineError`.
 * 5. `finishLabeling` writes the label step's manifest (the run's `label` step).
 *
 * Queries: `labelingProgress` (labelled / total, agreement, deadline and time left,
 * project URL). Never throws `Error`: failures are `ApplicationFailure`s.
 *
 * @returns the label step's result, as `labelFrames` returns it in `weak` mode; its
 *   `durationMs` is the whole wait (preparing, people, finishing).
 */
export async function labelingWorkflow(input: LabelingInput, state?: LabelingState): Promise<StepResult<LabelSummary>> {
  const opts = input.options;
  const wf = input.runWorkflowId;
  const cpu = proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '1 hour'));
  const short = proxyActivities<VideoActivities>(SHORT);
  const syncer = proxyActivities<VideoActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: `${input.heartbeatTimeoutS} seconds`,
    // A sync that keeps failing is reported and tried again at the next interval: the wait never fails on it.
    retry: { ...DEFAULT_RETRY, maximumAttempts: 3, maximumInterval: '10 seconds' },
  });
  const gpu = proxyActivities<TrainingActivities>(long(input.heartbeatTimeoutS, '30 minutes', input.gpuTaskQueue));

  const startedAtMs = state?.startedAtMs ?? Date.now();
  const deadlineAtMs = state?.deadlineAtMs ?? startedAtMs + opts.deadlineHours * 3_600_000;
  const pending = {
    annotationIds: new Set<number>(state?.pending.annotationIds ?? []),
    deletedAnnotationIds: new Set<number>(state?.pending.deletedAnnotationIds ?? []),
    full: state?.pending.full ?? true,
    signalled: false,
  };
  let finishRequested = state?.finishRequested ?? false;
  const progress: LabelingProgress = {
    ...(state?.counts ?? NO_COUNTS),
    state: state ? 'waiting' : 'preparing',
    label: input.label,
    projectId: state?.prepared.projectId ?? null,
    projectUrl: state?.prepared.projectUrl ?? null,
    deadline: state ? new Date(deadlineAtMs).toISOString() : null,
    timeLeftS: null,
    onDeadline: opts.onDeadline,
    lastSyncAt: state?.lastSyncAt ?? null,
    syncErrors: state?.syncErrors ?? 0,
    lastSyncError: state?.lastSyncError ?? null,
    finishedBy: null,
  };

  setHandler(labelingEventSignal, (e) => {
    for (const id of e.annotationIds ?? []) pending.annotationIds.add(id);
    for (const id of e.deletedAnnotationIds ?? []) {
      pending.deletedAnnotationIds.add(id);
      pending.annotationIds.delete(id);
    }
    if (e.full || pending.annotationIds.size + pending.deletedAnnotationIds.size > MAX_PENDING_IDS) {
      pending.full = true;
      pending.annotationIds.clear();
    }
    pending.signalled = true;
  });
  setHandler(finishLabelingSignal, () => {
    finishRequested = true;
  });
  setHandler(labelingProgressQuery, () => ({
    ...progress,
    timeLeftS: progress.deadline === null ? null : Math.max(0, Math.round((deadlineAtMs - Date.now()) / 1000)),
  }));

  let prepared = state?.prepared;
  if (!prepared) {
    const predictions = await gpu.predictFrames({ workflowId: wf, label: input.label });
    if (predictions.note) log.info('no model pre-annotations', { note: predictions.note });
    prepared = await cpu.prepareLabeling({
      workflowId: wf,
      label: input.label,
      options: opts,
      validationFraction: input.validationFraction,
      seed: input.seed,
      deadline: new Date(deadlineAtMs).toISOString(),
      predictionsKey: predictions.predictionsKey,
    });
    if (prepared.finished) return prepared.finished;
    progress.projectId = prepared.projectId;
    progress.projectUrl = prepared.projectUrl;
    progress.deadline = prepared.deadline;
    log.info('frames sent to people', { projectUrl: prepared.projectUrl, tasks: prepared.tasks, deadline: prepared.deadline });
  }
  progress.state = 'waiting';

  let finishedBy: 'complete' | 'deadline' | 'early';
  let syncs = 0;
  for (;;) {
    const batch = {
      annotationIds: [...pending.annotationIds],
      deletedAnnotationIds: [...pending.deletedAnnotationIds],
      full: pending.full,
    };
    pending.annotationIds.clear();
    pending.deletedAnnotationIds.clear();
    pending.full = false;
    pending.signalled = false;
    let synced = false;
    try {
      const counts = await syncer.syncLabeling({ workflowId: wf, ...batch });
      const { syncedAt, ...rest } = counts;
      Object.assign(progress, rest, { lastSyncAt: syncedAt, lastSyncError: null });
      synced = true;
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Keep what the batch named, and reconcile fully next time.
      for (const id of batch.annotationIds) pending.annotationIds.add(id);
      for (const id of batch.deletedAnnotationIds) pending.deletedAnnotationIds.add(id);
      pending.full = true;
      progress.syncErrors++;
      progress.lastSyncError = failureOf(err).message;
      log.warn('sync with Label Studio failed; the wait goes on', { error: progress.lastSyncError });
    }
    syncs++;
    if (synced && progress.done >= progress.tasks) {
      finishedBy = 'complete';
      break;
    }
    if (finishRequested) {
      finishedBy = 'early';
      break;
    }
    if (Date.now() >= deadlineAtMs) {
      finishedBy = 'deadline';
      break;
    }
    if (syncs >= opts.continueAfterSyncs || workflowInfo().continueAsNewSuggested) {
      const next: LabelingState = {
        prepared,
        startedAtMs,
        deadlineAtMs,
        pending: { annotationIds: [...pending.annotationIds], deletedAnnotationIds: [...pending.deletedAnnotationIds], full: pending.full },
        counts: { tasks: progress.tasks, done: progress.done, labelled: progress.labelled, annotations: progress.annotations, validation: progress.validation },
        syncErrors: progress.syncErrors,
        lastSyncAt: progress.lastSyncAt,
        lastSyncError: progress.lastSyncError,
        finishRequested,
      };
      await continueAsNew<typeof labelingWorkflow>(input, next);
    }
    const until = Math.min(deadlineAtMs, Date.now() + opts.reconcileIntervalS * 1000);
    const signalled = await condition(() => pending.signalled || finishRequested, Math.max(1, until - Date.now()));
    // Finishing syncs fully anyway (finishLabeling).
    if (finishRequested) {
      finishedBy = 'early';
      break;
    }
    if (signalled) await sleep(SIGNAL_BATCH_MS);
    // Woken by the interval (or the deadline): reconcile everything.
    else pending.full = true;
  }

  progress.finishedBy = finishedBy;
  if (finishedBy === 'deadline' && opts.onDeadline === 'fail') {
    progress.state = 'failed';
    const reason = `labelling deadline ${new Date(deadlineAtMs).toISOString()} passed with ${progress.done}/${progress.tasks} tasks done (policy "fail")`;
    await short.closeLabeling({ workflowId: wf, status: 'failed', reason });
    throw new LabelingDeadlineError(`${reason}; people's labels are kept in Postgres and in ${prepared.projectUrl}`);
  }
  progress.state = 'finishing';
  const result = await cpu.finishLabeling({ workflowId: wf, finishedBy });
  progress.state = 'done';
  // The step took the whole wait, not just the final activity.
  return result.reused ? result : { ...result, durationMs: Date.now() - startedAtMs };
}
