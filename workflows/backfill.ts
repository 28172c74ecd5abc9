import {
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  executeChild,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { VideoActivities } from '../activities';
import {
  BACKFILL_EVENTS_PER_PAGE,
  BACKFILL_EVENTS_PER_VIDEO,
  BACKFILL_EVENTS_RESERVE,
  BackfillInput,
  backfillPageRunId,
  backfillProgressQuery,
  extractChildWorkflowId,
  failureOf,
  fieldIssues,
  formatIssues,
  InvalidInputError,
  LABEL_ATTRIBUTE,
  long,
  MAX_REPORTED_FAILURES,
  runPrefix,
  SHORT,
  STAGE_ATTRIBUTE,
  type BackfillCounts,
  type BackfillPhase,
  type BackfillProgress,
  type BackfillRequest,
  type BackfillResult,
  type BackfillSelectSummary,
  type BackfillState,
  type IngestSourceSummary,
  type VideoExtractSummary,
  type VideoFailure,
} from '../contracts';
import { extractVideoWorkflow } from './extract-video';

/** One planned page: videos still extracting, its failures, whether its gathering has begun. */
interface OpenPage {
  page: number;
  pending: number;
  failures: VideoFailure[];
  finalizing: boolean;
  cancelled: boolean;
}

/** A step result less its bookkeeping fields, as kept in state and result. */
function summaryOf<S extends object>(r: S & { manifestKey?: string; reused?: boolean; durationMs?: number }): S {
  const { manifestKey: _k, reused: _r, durationMs: _d, ...rest } = r;
  return rest as unknown as S;
}

/**
 * The backfill workflow: extract (and embed) frames for every catalog video of a label,
 * with no cap, at any scale.
 *
 * First (once per backfill) it records the run in Postgres, ingests `ingest` when given
 * (`ingestSource`: an S3 prefix, a folder or a catalog file) and selects the videos
 * (`selectBackfill`), cutting them into pages that are runs of their own
 * (`<id>-p00001`, ...). Then pages flow through a bounded pipeline: a page is planned
 * (`planBackfillPage`: videos whose frames already exist are reused, nothing started for
 * them), its other videos run as the existing extract child workflow (`<id>/extract/<video>`),
 * at most `concurrency` at once across pages, and once they are all done the page is
 * gathered (`finishExtract`) and embedded (`embedFrames`, cached by content) while the
 * next page extracts. At most two pages are open at a time.
 *
 * History stays bounded: a run stops taking pages when its history plus what the open
 * work can still add ({@link BACKFILL_EVENTS_PER_VIDEO} per video, {@link BACKFILL_EVENTS_PER_PAGE}
 * per page) would reach `maxHistoryEvents` (or when the server suggests it), lets the
 * open pages finish, and continues as new with a page cursor and counts (never video
 * lists). A video that fails is reported and the backfill goes on.
 *
 * Cancelled (`reelset cancel`, the UI): the extract children are cancelled and awaited
 * (their ffmpeg is killed and temporary files removed by the activity), then the run and
 * its open pages are recorded as `cancelled` in Postgres. Progress:
 * {@link backfillProgressQuery}; search attributes `ReelsetLabel` and `ReelsetStage` (the phase).
 *
 * @param request {@link BackfillInput}; `{"label": "bicycle"}` is enough.
 * @param state carried by continue-as-new only.
 */
export async function backfillWorkflow(request: BackfillRequest, state?: BackfillState): Promise<BackfillResult> {
  const parsed = BackfillInput.safeParse(request);
  if (!parsed.success) {
    throw new InvalidInputError(`invalid backfill input: ${formatIssues(parsed.error)}`, { details: [fieldIssues(parsed.error)] });
  }
  const input = parsed.data;
  const { workflowId } = workflowInfo();
  const short = proxyActivities<VideoActivities>(SHORT);
  const longer = proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '2 hours'));
  // A large source can take hours to ingest; a retried attempt skips what is already in (ETag, content).
  const ingesting = proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '12 hours'));

  const counts: BackfillCounts = state?.counts ?? {
    total: 0,
    extracted: 0,
    reused: 0,
    failed: 0,
    frames: 0,
    framesReused: 0,
    embedded: 0,
    embeddingsCached: 0,
    pagesDone: 0,
    pages: 0,
  };
  const failures: VideoFailure[] = [...(state?.failures ?? [])];
  const startedAtMs = state?.startedAtMs ?? Date.now();
  const runsBefore = state?.runsBefore ?? 0;
  let maxHistoryLength = state?.maxHistoryLength ?? 0;
  let select: BackfillSelectSummary | undefined = state?.select;
  let ingest: IngestSourceSummary | undefined = state?.ingest;
  let phase: BackfillPhase = state ? 'extract' : 'start';
  let running = 0;

  const rate = () => {
    const s = (Date.now() - startedAtMs) / 1000;
    return s > 0 ? (counts.extracted + counts.failed) / s : 0;
  };
  setHandler(backfillProgressQuery, (): BackfillProgress => ({
    label: select?.label ?? input.label,
    phase,
    ...counts,
    done: counts.extracted + counts.reused + counts.failed,
    running,
    startedAt: new Date(startedAtMs).toISOString(),
    elapsedS: (Date.now() - startedAtMs) / 1000,
    videosPerSecond: rate(),
    run: runsBefore + 1,
    historyLength: workflowInfo().historyLength,
  }));
  const setPhase = (p: BackfillPhase) => {
    phase = p;
    upsertSearchAttributes([
      { key: LABEL_ATTRIBUTE, value: input.label },
      { key: STAGE_ATTRIBUTE, value: p },
    ]);
  };

  const children = new Set<Promise<void>>();
  try {
    if (!state) {
      setPhase('start');
      await short.startRun({ workflowId, kind: 'backfill', label: input.label, input });
      if (input.ingest) {
        setPhase('ingest');
        ingest = summaryOf(await ingesting.ingestSource({ workflowId, label: input.label, source: input.ingest }));
      }
      setPhase('select');
      select = summaryOf(
        await longer.selectBackfill({
          workflowId,
          label: input.label,
          since: input.since,
          videoIds: input.videoIds,
          fromIngest: input.ingest !== undefined,
          pageSize: input.pageSize,
        }),
      );
      counts.total = select.total;
      counts.pages = select.pages;
      setPhase('extract');
    }
    if (!select) throw new InvalidInputError('backfill state without a selection');

    // ------------------------------------------------------------- the page pipeline ---
    const queue: Array<{ page: OpenPage; videoId: string }> = [];
    const open = new Map<number, OpenPage>();
    let cursor = state?.cursor ?? 0;
    let planning = false;
    let stopPlanning = false;
    let fatal: unknown;
    let gathering: Promise<void> = Promise.resolve();

    const gather = (p: OpenPage) => {
      if (p.pending > 0 || p.finalizing || p.cancelled) return;
      p.finalizing = true;
      const pageId = backfillPageRunId(workflowId, p.page);
      gathering = gathering.then(async () => {
        try {
          await short.finishExtract({ workflowId: pageId, options: input.extract, failures: p.failures });
          if (input.embed) {
            const e = await longer.embedFrames({ workflowId: pageId });
            counts.embedded += e.computed;
            counts.embeddingsCached += e.cached;
          }
          await short.finishRun({ workflowId: pageId, status: 'completed', result: { page: p.page, failed: p.failures.length } });
          counts.pagesDone++;
          open.delete(p.page);
        } catch (err) {
          fatal ??= err;
        }
      });
    };

    const plan = async (page: number) => {
      planning = true;
      try {
        const r = await short.planBackfillPage({ workflowId: backfillPageRunId(workflowId, page), page, options: input.extract });
        counts.reused += r.reused;
        counts.framesReused += r.reusedFrames;
        const p: OpenPage = { page, pending: r.toExtract.length, failures: [], finalizing: false, cancelled: false };
        open.set(page, p);
        for (const videoId of r.toExtract) queue.push({ page: p, videoId });
        gather(p);
      } catch (err) {
        fatal ??= err;
      } finally {
        planning = false;
      }
    };

    const launch = (job: { page: OpenPage; videoId: string }) => {
      running++;
      const { page, videoId } = job;
      const child: Promise<void> = executeChild(extractVideoWorkflow, {
        workflowId: extractChildWorkflowId(workflowId, videoId),
        args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }],
      })
        .then((r: VideoExtractSummary) => {
          if (r.reused) {
            counts.reused++;
            counts.framesReused += r.frames;
          } else {
            counts.extracted++;
            counts.frames += r.frames;
          }
        })
        .catch((err: unknown) => {
          if (isCancellation(err)) {
            page.cancelled = true;
            return;
          }
          const failed: VideoFailure = { videoId, ...failureOf(err) };
          page.failures.push(failed);
          if (failures.length < MAX_REPORTED_FAILURES) failures.push(failed);
          counts.failed++;
          log.warn('video failed; the backfill goes on without it', { ...failed });
        })
        .finally(() => {
          running--;
          page.pending--;
          children.delete(child);
          gather(page);
        });
      children.add(child);
    };

    /** Events the work already taken can still add to this run's history. */
    const committed = () => (queue.length + running) * BACKFILL_EVENTS_PER_VIDEO + (open.size + 1) * BACKFILL_EVENTS_PER_PAGE + BACKFILL_EVENTS_RESERVE;
    const nextPageCost = input.pageSize * BACKFILL_EVENTS_PER_VIDEO + BACKFILL_EVENTS_PER_PAGE;
    const canPlan = () => !stopPlanning && !planning && cursor < counts.pages && open.size < 2 && queue.length < input.concurrency;
    const drained = () => !planning && queue.length === 0 && running === 0 && open.size === 0;

    for (;;) {
      if (fatal !== undefined) throw fatal;
      const info = workflowInfo();
      if (!stopPlanning && cursor < counts.pages && (info.continueAsNewSuggested || info.historyLength + committed() + nextPageCost >= input.maxHistoryEvents)) {
        stopPlanning = true;
        log.info('history bound reached: finishing the open pages, then continuing as new', { historyLength: info.historyLength, cursor });
      }
      if (canPlan()) void plan(cursor++);
      if (running < input.concurrency && queue.length > 0) {
        launch(queue.shift()!);
        continue;
      }
      if (drained() && (stopPlanning || cursor >= counts.pages)) break;
      await condition(() => fatal !== undefined || (running < input.concurrency && queue.length > 0) || canPlan() || drained());
    }
    await gathering;
    if (fatal !== undefined) throw fatal;

    maxHistoryLength = Math.max(maxHistoryLength, workflowInfo().historyLength);
    if (cursor < counts.pages) {
      await continueAsNew<typeof backfillWorkflow>(request, {
        cursor,
        counts,
        failures,
        startedAtMs,
        runsBefore: runsBefore + 1,
        maxHistoryLength,
        select,
        ...(ingest ? { ingest } : {}),
      });
    }

    const durationS = (Date.now() - startedAtMs) / 1000;
    const result: BackfillResult = {
      workflowId,
      label: select.label,
      runPrefix: runPrefix(workflowId),
      ...(ingest ? { ingest } : {}),
      select,
      ...counts,
      failures,
      runs: runsBefore + 1,
      maxHistoryLength,
      durationS,
      videosPerSecond: rate(),
    };
    setPhase('done');
    await short.finishRun({ workflowId, status: 'completed', result });
    return result;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    const cancelled = isCancellation(err);
    const { type, message } = failureOf(err);
    const failedAt = phase;
    await CancellationScope.nonCancellable(async () => {
      // The children finish cancelling first: their ffmpeg is gone and temp files removed.
      await Promise.allSettled([...children]);
      setPhase(cancelled ? 'cancelled' : 'failed');
      await short.finishRun({
        workflowId,
        status: cancelled ? 'cancelled' : 'failed',
        result: { phase: failedAt, type, error: message, counts, failures },
      });
    }).catch(() => undefined);
    throw err;
  }
}
