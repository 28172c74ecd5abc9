import {
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  executeChild,
  isCancellation,
  log,
  patched,
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
  type ExtractBatchItem,
  type VideoFailure,
} from '../contracts';
import { batchExtractor } from './extract-batch';
import { extractVideoWorkflow } from './extract-video';
import { FanOutPool, historyFull } from './fan-out';
import { parseInput } from './parse-input';
import { EXTRACT_BATCHES_PATCH } from './patches';

/** One planned page: videos still extracting, its failures, whether its gathering has begun. */
interface OpenPage {
  page: number;
  pending: number;
  failures: VideoFailure[];
  finalizing: boolean;
  cancelled: boolean;
}

/** Videos to extract together (a batch; one video with batching off), and their page. */
interface Job {
  page: OpenPage;
  videoIds: string[];
}

/** What the parts of one backfill run share: its input, activities, counts and the state it carries. */
interface BackfillRun {
  input: BackfillInput;
  workflowId: string;
  short: VideoActivities;
  longer: VideoActivities;
  counts: BackfillCounts;
  /** The first {@link MAX_REPORTED_FAILURES} failures (every one is in its page's manifest). */
  failures: VideoFailure[];
  startedAtMs: number;
  runsBefore: number;
  maxHistoryLength: number;
  select?: BackfillSelectSummary;
  ingest?: IngestSourceSummary;
  phase: BackfillPhase;
  /** The extractions (batches, or children with batching off) running now, across pages. */
  videos?: FanOutPool<Job, ExtractBatchItem[]>;
  /** Videos of the running extractions. */
  runningVideos: number;
  /** Batches (`extractVideos` activities) rather than one child workflow per video. */
  batched: boolean;
  /** Enter a phase: the progress query and the `ReelsetStage` (and `ReelsetLabel`) search attributes say so. */
  setPhase(p: BackfillPhase): void;
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
 * them; the others cut into batches), its batches run as `extractVideos` activities
 * (`./extract-batch.ts`; with `batching.mode` `off`, or replaying a history from before
 * batches, one extract child workflow `<id>/extract/<video>` per video), at most
 * `concurrency` at once across pages, and once they are all done the page is
 * gathered (`finishExtract`) and embedded (`embedFrames`, cached by content) while the
 * next page extracts. At most two pages are open at a time.
 *
 * History stays bounded: a run stops taking pages when its history plus what the open
 * work can still add ({@link BACKFILL_EVENTS_PER_VIDEO} per extraction, {@link BACKFILL_EVENTS_PER_PAGE}
 * per page) would reach `maxHistoryEvents` (or when the server suggests it), lets the
 * open pages finish, and continues as new with a page cursor and counts (never video
 * lists). A video that fails is reported and the backfill goes on.
 *
 * Cancelled (`reelset cancel`, the UI): the extractions are cancelled and awaited
 * (their ffmpeg is killed and temporary files removed by the activity), then the run and
 * its open pages are recorded as `cancelled` in Postgres. Progress:
 * {@link backfillProgressQuery}; search attributes `ReelsetLabel` and `ReelsetStage` (the phase).
 *
 * @param request {@link BackfillInput}; `{"label": "bicycle"}` is enough.
 * @param state carried by continue-as-new only.
 */
export async function backfillWorkflow(request: BackfillRequest, state?: BackfillState): Promise<BackfillResult> {
  const input = parseInput(BackfillInput, request, 'backfill');
  const run = openRun(input, state);
  try {
    if (!state) await selectVideos(run);
    if (!run.select) throw new InvalidInputError('backfill state without a selection');
    const cursor = await runPages(run, state?.cursor ?? 0);
    run.maxHistoryLength = Math.max(run.maxHistoryLength, workflowInfo().historyLength);
    if (cursor < run.counts.pages) await continueAsNew<typeof backfillWorkflow>(request, carriedState(run, cursor));
    return await finishBackfill(run, run.select);
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    await recordEnd(run, err);
    throw err;
  }
}

/** The run's shared parts, from the state a continued run was handed (if any), and its progress query. */
function openRun(input: BackfillInput, state: BackfillState | undefined): BackfillRun {
  const run: BackfillRun = {
    input,
    workflowId: workflowInfo().workflowId,
    short: proxyActivities<VideoActivities>(SHORT),
    longer: proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '2 hours')),
    counts: state?.counts ?? {
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
    },
    failures: [...(state?.failures ?? [])],
    startedAtMs: state?.startedAtMs ?? Date.now(),
    runsBefore: state?.runsBefore ?? 0,
    maxHistoryLength: state?.maxHistoryLength ?? 0,
    select: state?.select,
    ingest: state?.ingest,
    phase: state ? 'extract' : 'start',
    runningVideos: 0,
    batched: false,
    setPhase(p) {
      run.phase = p;
      upsertSearchAttributes([
        { key: LABEL_ATTRIBUTE, value: input.label },
        { key: STAGE_ATTRIBUTE, value: p },
      ]);
    },
  };
  setHandler(backfillProgressQuery, (): BackfillProgress => ({
    label: run.select?.label ?? input.label,
    phase: run.phase,
    ...run.counts,
    done: run.counts.extracted + run.counts.reused + run.counts.failed,
    running: run.runningVideos,
    startedAt: new Date(run.startedAtMs).toISOString(),
    elapsedS: (Date.now() - run.startedAtMs) / 1000,
    videosPerSecond: rate(run),
    run: run.runsBefore + 1,
    historyLength: workflowInfo().historyLength,
  }));
  return run;
}

/** Videos finished (extracted or failed) per second since the backfill started. */
function rate(run: BackfillRun): number {
  const s = (Date.now() - run.startedAtMs) / 1000;
  return s > 0 ? (run.counts.extracted + run.counts.failed) / s : 0;
}

/** The first run's start: record the run, ingest `ingest` when given, select the videos and cut them into pages. */
async function selectVideos(run: BackfillRun): Promise<void> {
  const { input, workflowId } = run;
  // A large source can take hours to ingest; a retried attempt skips what is already in (ETag, content).
  const ingesting = proxyActivities<VideoActivities>(long(input.heartbeatTimeoutS, '12 hours'));
  run.setPhase('start');
  await run.short.startRun({ workflowId, kind: 'backfill', label: input.label, input });
  if (input.ingest) {
    run.setPhase('ingest');
    run.ingest = summaryOf(await ingesting.ingestSource({ workflowId, label: input.label, source: input.ingest }));
  }
  run.setPhase('select');
  run.select = summaryOf(
    await run.longer.selectBackfill({
      workflowId,
      label: input.label,
      since: input.since,
      videoIds: input.videoIds,
      fromIngest: input.ingest !== undefined,
      pageSize: input.pageSize,
    }),
  );
  run.counts.total = run.select.total;
  run.counts.pages = run.select.pages;
  run.setPhase('extract');
}

/**
 * The page pipeline, from page `cursor` on: a page is planned (`planBackfillPage`; one
 * plan at a time, at most two pages open, the next planned once fewer than `concurrency`
 * videos wait), its batches (or videos) run through one pool of `concurrency` extractions
 * across pages, and a page whose videos have all settled is gathered ({@link gatherPage},
 * one page after another). Stops taking pages when the history bound is reached
 * ({@link historyFull} with what the open work can still add) and lets the open pages
 * finish.
 *
 * @returns the next page to plan (the page count when every page is done).
 * @throws the first failure of a plan or a gathering (the backfill fails with it).
 */
async function runPages(run: BackfillRun, cursor: number): Promise<number> {
  const { input, counts } = run;
  const queue: Job[] = [];
  const open = new Map<number, OpenPage>();
  const gate = { planning: false, stopPlanning: false, fatal: undefined as unknown, gathering: Promise.resolve() };
  const gather = (p: OpenPage) => gatherPage(run, p, open, gate);
  run.batched = input.batching.mode === 'auto' && patched(EXTRACT_BATCHES_PATCH);
  const videos = extractPool(run, gather);
  run.videos = videos;

  const plan = async (page: number) => {
    gate.planning = true;
    try {
      const r = await run.short.planBackfillPage({
        workflowId: backfillPageRunId(run.workflowId, page),
        page,
        options: input.extract,
        ...(run.batched ? { batching: input.batching, lanes: input.concurrency } : {}),
      });
      counts.reused += r.reused;
      counts.framesReused += r.reusedFrames;
      const p: OpenPage = { page, pending: r.toExtract.length, failures: [], finalizing: false, cancelled: false };
      open.set(page, p);
      for (const videoIds of r.batches ?? r.toExtract.map((id) => [id])) queue.push({ page: p, videoIds });
      gather(p);
    } catch (err) {
      gate.fatal ??= err;
    } finally {
      gate.planning = false;
    }
  };

  /** Events the work already taken can still add to this run's history, and what the next page would. */
  const committed = () => (queue.length + videos.running) * BACKFILL_EVENTS_PER_VIDEO + (open.size + 1) * BACKFILL_EVENTS_PER_PAGE + BACKFILL_EVENTS_RESERVE;
  const nextPageCost = input.pageSize * BACKFILL_EVENTS_PER_VIDEO + BACKFILL_EVENTS_PER_PAGE;
  const canPlan = () => !gate.stopPlanning && !gate.planning && cursor < counts.pages && open.size < 2 && queue.length < input.concurrency;
  const drained = () => !gate.planning && queue.length === 0 && videos.running === 0 && open.size === 0;

  for (;;) {
    if (gate.fatal !== undefined) throw gate.fatal;
    if (!gate.stopPlanning && cursor < counts.pages && historyFull(input.maxHistoryEvents, committed() + nextPageCost)) {
      gate.stopPlanning = true;
      log.info('history bound reached: finishing the open pages, then continuing as new', { historyLength: workflowInfo().historyLength, cursor });
    }
    if (canPlan()) void plan(cursor++);
    if (videos.hasRoom && queue.length > 0) {
      videos.launch(queue.shift()!);
      continue;
    }
    if (drained() && (gate.stopPlanning || cursor >= counts.pages)) break;
    await condition(() => gate.fatal !== undefined || (videos.hasRoom && queue.length > 0) || canPlan() || drained());
  }
  await gate.gathering;
  if (gate.fatal !== undefined) throw gate.fatal;
  return cursor;
}

/**
 * The extractions of the run's pages, at most `concurrency` at once: a batch per
 * `extractVideos` activity (`./extract-batch.ts`), or, with batching off (or replaying a
 * history from before batches), one extract child workflow per video. Counts, and
 * failures recorded on the page (and the first few in the run's); a page whose videos
 * have all settled is gathered. A cancelled extraction marks its page cancelled (never
 * gathered).
 */
function extractPool(run: BackfillRun, gather: (p: OpenPage) => void): FanOutPool<Job, ExtractBatchItem[]> {
  const { input, counts } = run;
  const batch = batchExtractor({ options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS });
  const fail = (page: OpenPage, videoId: string, failure: { type: string; message: string }) => {
    const failed: VideoFailure = { videoId, ...failure };
    page.failures.push(failed);
    if (run.failures.length < MAX_REPORTED_FAILURES) run.failures.push(failed);
    counts.failed++;
    log.warn('video failed; the backfill goes on without it', { ...failed });
  };
  return new FanOutPool<Job, ExtractBatchItem[]>({
    concurrency: input.concurrency,
    start: async ({ videoIds }) => {
      run.runningVideos += videoIds.length;
      if (run.batched) return batch(videoIds);
      const videoId = videoIds[0]!;
      const r = await executeChild(extractVideoWorkflow, {
        workflowId: extractChildWorkflowId(run.workflowId, videoId),
        args: [{ videoId, options: input.extract, heartbeatTimeoutS: input.heartbeatTimeoutS }],
      });
      return [{ videoId, ok: true, summary: { frames: r.frames, sampled: r.sampled, decodeErrorCount: r.decodeErrorCount, reused: r.reused } }];
    },
    onSuccess: ({ page }, items) => {
      for (const item of items) {
        if (!item.ok) fail(page, item.videoId, item.failure);
        else if (item.summary.reused) {
          counts.reused++;
          counts.framesReused += item.summary.frames;
        } else {
          counts.extracted++;
          counts.frames += item.summary.frames;
        }
      }
    },
    onFailure: ({ page, videoIds }, err) => {
      if (isCancellation(err)) {
        page.cancelled = true;
        return;
      }
      for (const videoId of videoIds) fail(page, videoId, failureOf(err));
    },
    onSettled: ({ page, videoIds }) => {
      run.runningVideos -= videoIds.length;
      page.pending -= videoIds.length;
      gather(page);
    },
  });
}

/**
 * Gather a page whose videos have all settled, after the pages gathered before it: its
 * extract manifest (`finishExtract`, with its failures), its embeddings when `embed`
 * (`embedFrames`, cached by content), its page run recorded completed; then it is closed.
 * A failure is kept in `gate.fatal` (the pipeline throws it).
 */
function gatherPage(run: BackfillRun, p: OpenPage, open: Map<number, OpenPage>, gate: { fatal: unknown; gathering: Promise<void> }): void {
  if (p.pending > 0 || p.finalizing || p.cancelled) return;
  p.finalizing = true;
  const pageId = backfillPageRunId(run.workflowId, p.page);
  gate.gathering = gate.gathering.then(async () => {
    try {
      await run.short.finishExtract({ workflowId: pageId, options: run.input.extract, failures: p.failures });
      if (run.input.embed) {
        const e = await run.longer.embedFrames({ workflowId: pageId });
        run.counts.embedded += e.computed;
        run.counts.embeddingsCached += e.cached;
      }
      await run.short.finishRun({ workflowId: pageId, status: 'completed', result: { page: p.page, failed: p.failures.length } });
      run.counts.pagesDone++;
      open.delete(p.page);
    } catch (err) {
      gate.fatal ??= err;
    }
  });
}

/** What the next run of the chain starts from: a page cursor and counts, never video lists. */
function carriedState(run: BackfillRun, cursor: number): BackfillState {
  return {
    cursor,
    counts: run.counts,
    failures: run.failures,
    startedAtMs: run.startedAtMs,
    runsBefore: run.runsBefore + 1,
    maxHistoryLength: run.maxHistoryLength,
    select: run.select!,
    ...(run.ingest ? { ingest: run.ingest } : {}),
  };
}

/** Every page done: the backfill's result, recorded (`finishRun`) and returned. */
async function finishBackfill(run: BackfillRun, select: BackfillSelectSummary): Promise<BackfillResult> {
  const result: BackfillResult = {
    workflowId: run.workflowId,
    label: select.label,
    runPrefix: runPrefix(run.workflowId),
    ...(run.ingest ? { ingest: run.ingest } : {}),
    select,
    ...run.counts,
    failures: run.failures,
    runs: run.runsBefore + 1,
    maxHistoryLength: run.maxHistoryLength,
    durationS: (Date.now() - run.startedAtMs) / 1000,
    videosPerSecond: rate(run),
  };
  run.setPhase('done');
  await run.short.finishRun({ workflowId: run.workflowId, status: 'completed', result });
  return result;
}

/**
 * The end of a backfill that failed or was cancelled, recorded even while it is being
 * cancelled: the running children finish cancelling first (their ffmpeg is gone and
 * temporary files removed), then the phase `cancelled` or `failed` and the run's end in
 * Postgres (the phase it stopped at, the failure, the counts). Never throws.
 */
async function recordEnd(run: BackfillRun, err: unknown): Promise<void> {
  const cancelled = isCancellation(err);
  const { type, message } = failureOf(err);
  const failedAt = run.phase;
  await CancellationScope.nonCancellable(async () => {
    await run.videos?.settled();
    run.setPhase(cancelled ? 'cancelled' : 'failed');
    await run.short.finishRun({
      workflowId: run.workflowId,
      status: cancelled ? 'cancelled' : 'failed',
      result: { phase: failedAt, type, error: message, counts: run.counts, failures: run.failures },
    });
  }).catch(() => undefined);
}
