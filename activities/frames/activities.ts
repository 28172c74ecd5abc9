import { Context } from '@temporalio/activity';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CatalogError,
  failureOf,
  isNonRetryable,
  planExtractBatches,
  type ExtractBatching,
  type ExtractBatchItem,
  type ExtractBatchResult,
  framesManifestKey,
  framesPrefix,
  MissingArtifactError,
  VideoDecodeError,
  type BackfillPagePlan,
  type ExtractOptions,
  type ExtractStepManifest,
  type ExtractStepSummary,
  type FrameRecord,
  type SearchManifest,
  type StepResult,
  type VideoExtractSummary,
  type VideoFailure,
  type VideoFramesManifest,
  type VideoProbe,
} from '../../contracts';
import type { ActivityDeps } from '../../lib/deps';
import { heartbeat, type Heartbeat } from '../../lib/heartbeat';
import { repos } from '../../lib/repositories';
import { readStepManifest, runStep } from '../../lib/runs';
import { PLAN_CONCURRENCY } from './backfill';
import { extractFrames, extractionParamsHash, framesManifest, type ExtractProgress, type ExtractResume } from './extract';
import { PROBE_VERSION, probeVideo, type CachedProbe } from './probe';

/**
 * Heartbeat details of `extractVideo`: small (counts, one timestamp), and enough for a
 * retried attempt to resume after `progress` (the frames it covers are in S3 and in
 * Postgres) without decoding or uploading them again.
 */
export interface ExtractHeartbeat {
  paramsHash: string;
  /** Committed progress: frames stored and recorded, or dropped, in sample order. */
  progress: ExtractProgress;
  /** Timestamp of the latest frame ffmpeg delivered, seconds of video (may run ahead of `progress`). */
  videoS: number;
  /** First decoder complaints, for the resumed attempt's report. */
  decodeErrors: string[];
}

/**
 * Heartbeat details of `extractVideos`: every finished video's item (what a retried
 * attempt skips) and the current video's {@link ExtractHeartbeat}.
 */
export interface ExtractBatchHeartbeat {
  done: ExtractBatchItem[];
  current?: { videoId: string; progress: ExtractHeartbeat };
}

/** How one video's extraction reaches its activity: the last attempt's progress, the abort signal, the heartbeat. */
interface ExtractContext {
  /** The video's progress in the last attempt's heartbeat, if any. */
  details: ExtractHeartbeat | undefined;
  /** True on a retried attempt (objects of the earlier one may be in S3). */
  retried: boolean;
  signal: AbortSignal;
  /** Record progress; `now`: send it at once (a commit a retry resumes from), else at the next tick. */
  beat(progress: ExtractHeartbeat, now: boolean): void;
}

/** Frame extraction activities (CPU video task queue). */
export function createFrameActivities(deps: ActivityDeps) {
  const { store, pool, config } = deps;

  async function loadVideo(videoId: string) {
    const row = await repos.videos.forExtraction<CachedProbe>(pool, videoId);
    if (!row) throw new CatalogError(`video ${JSON.stringify(videoId)} is not in the catalog`);
    return row;
  }

  /**
   * The probe of a video's content: cached in `videos.probe` by the first extraction (a
   * pure function of the sha256-addressed bytes), else ffprobe + the truncation check on
   * the local copy, then cached, failures included.
   *
   * @throws VideoDecodeError naming the catalog file and the reason (cached or fresh).
   */
  async function probeContent(
    sha256: string,
    cached: CachedProbe | null,
    file: () => Promise<string>,
    named: string,
    signal: AbortSignal,
  ): Promise<VideoProbe> {
    if (cached?.version === PROBE_VERSION) {
      if (cached.error !== undefined) throw new VideoDecodeError(named, cached.error);
      if (cached.probe) return cached.probe;
    }
    const save = (c: CachedProbe) => repos.videos.saveProbe(pool, sha256, c);
    try {
      // A tool that times out or cannot run throws a TransientError: retried, never cached.
      const probe = await probeVideo(await file(), {
        ffprobePath: config.FFPROBE_PATH,
        ffmpegPath: config.FFMPEG_PATH,
        timeoutMs: config.FFPROBE_TIMEOUT_S * 1000,
        signal,
      });
      await save({ version: PROBE_VERSION, probe });
      return probe;
    } catch (err: unknown) {
      if (!(err instanceof VideoDecodeError)) throw err;
      await save({ version: PROBE_VERSION, error: err.reason });
      // No `cause`: failureOf reports the innermost failure, which names the temporary copy.
      throw new VideoDecodeError(named, err.reason);
    }
  }

  /** Insert frame rows in one statement (atomic; a retry's duplicates are ignored). */
  async function insertFrameRows(videoId: string, paramsHash: string, fr: FrameRecord[]): Promise<void> {
    if (!fr.length) return;
    await repos.frames.insertMany(pool, videoId, paramsHash, fr);
  }

  /**
   * Where a retried attempt starts: after the last attempt's heartbeat, when its frames
   * are all in Postgres (they were recorded before the heartbeat that counts them);
   * otherwise from the start (uploads already in S3 are still skipped).
   */
  async function resumePoint(videoId: string, paramsHash: string, hb: ExtractHeartbeat | undefined): Promise<ExtractResume | undefined> {
    if (!hb || hb.paramsHash !== paramsHash || !(hb.progress?.sampled > 0)) return undefined;
    const frames = await repos.frames.sampledBefore(pool, videoId, paramsHash, hb.progress.sampled);
    if (frames.length !== hb.progress.frames) return undefined;
    return { progress: hb.progress, frames, decodeErrors: hb.decodeErrors };
  }

  /** One video's extraction: the body of `extractVideo`, and of each video of `extractVideos`. */
  async function extractOne(input: { videoId: string; options: ExtractOptions }, at: ExtractContext): Promise<VideoExtractSummary> {
    const video = await loadVideo(input.videoId);
    const paramsHash = extractionParamsHash(input.options);
    const manifestKey = framesManifestKey(video.sha256, paramsHash);
    const summarize = (m: VideoFramesManifest, reused: boolean, timingsMs?: VideoExtractSummary['timingsMs']): VideoExtractSummary => ({
      videoId: input.videoId,
      frames: m.frames.length,
      sampled: m.sampled,
      dropped: m.dropped,
      decodeErrorCount: m.decodeErrorCount,
      manifestKey,
      reused,
      ...(timingsMs ? { timingsMs } : {}),
    });
    const existing = await store.getJson<VideoFramesManifest>(manifestKey);
    if (existing) {
      // The manifest is content-addressed and can outlive the video's rows (a catalog
      // entry removed and registered again, a cleanup of one extraction's rows): put any
      // missing row back, so every frame a run reads from the manifest has its row
      // (frame_labels and the dataset reference them). Idempotent.
      await insertFrameRows(input.videoId, paramsHash, existing.frames);
      return summarize(existing, true);
    }

    const prefix = framesPrefix(video.sha256, paramsHash);
    const details = at.details;
    // A first attempt has nothing of its own in S3 yet: skip the listing (a frame left by
    // some other crashed run is overwritten with the same bytes under the same key).
    const stored = new Set(at.retried || details ? await store.list(prefix) : []);
    const resume = await resumePoint(input.videoId, paramsHash, details);
    if (resume) deps.logger.info({ videoId: input.videoId, progress: resume.progress }, 'extract: resuming after the last heartbeat');
    let beat: ExtractHeartbeat = {
      paramsHash,
      progress: resume?.progress ?? { sampled: 0, frames: 0, lastTimestampS: null, dropped: { nearBlack: 0, nearWhite: 0, blurred: 0 }, decodeErrorCount: 0 },
      videoS: resume?.progress.lastTimestampS ?? 0,
      decodeErrors: resume?.decodeErrors ?? [],
    };
    at.beat(beat, true);
    const hb = {
      get progress() {
        return beat;
      },
      set(p: ExtractHeartbeat) {
        at.beat((beat = p), true);
      },
      update(p: ExtractHeartbeat) {
        at.beat((beat = p), false);
      },
    };
    // A timer, not the frames, drives heartbeats: a scene or keyframe scan can go long without a pick.
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-extract-'));
    try {
      const file = path.join(tmp, `video${path.extname(video.file_name)}`);
      let t = performance.now();
      const lap = () => {
        const now = performance.now();
        const ms = Math.round(now - t);
        t = now;
        return ms;
      };
      let downloaded = false;
      const fetchVideo = async () => {
        if (!downloaded) await store.download(video.s3_key, file, at.signal);
        downloaded = true;
        return file;
      };
      // Errors name the catalog file and video id, not the temporary copy.
      const named = `${video.file_name} (video ${input.videoId})`;
      const rename = (err: unknown): never => {
        if (err instanceof VideoDecodeError) throw new VideoDecodeError(named, err.reason);
        throw err;
      };
      // A file known to be unusable fails here, before it is even downloaded.
      const probe = await probeContent(video.sha256, video.probe, fetchVideo, named, at.signal);
      const probeMs = lap();
      await fetchVideo();
      const downloadMs = lap();
      const result = await extractFrames(
        file,
        video.sha256,
        probe,
        input.options,
        {
          has: (key) => stored.has(key),
          // One signed PUT without the SDK's middleware: the frame's sha256 is the payload hash the server checks.
          put: (frame, bytes) => store.put(frame.key, bytes, input.options.format === 'webp' ? 'image/webp' : 'image/jpeg', frame.sha256),
          // Rows after objects: a row always points at a stored frame. Idempotent on the key.
          commit: async (frames, progress) => {
            await insertFrameRows(input.videoId, paramsHash, frames);
            hb.set({ ...hb.progress, progress });
          },
        },
        {
          ffmpegPath: config.FFMPEG_PATH,
          signal: at.signal,
          stallTimeoutMs: config.FFMPEG_STALL_TIMEOUT_S * 1000,
          uploadConcurrency: config.S3_UPLOAD_CONCURRENCY,
          resume,
          // Frames are scored concurrently: keep the furthest point reached.
          onFrame: (p) => {
            if (p.timestampS > hb.progress.videoS) hb.update({ ...hb.progress, videoS: p.timestampS });
          },
        },
      ).catch(rename);
      const extractMs = lap();
      const manifest = framesManifest({ videoId: input.videoId, videoSha256: video.sha256, options: input.options, probe }, result);
      await store.putJson(manifestKey, manifest);
      return summarize(manifest, false, { download: downloadMs, probe: probeMs, extract: extractMs, manifest: lap() });
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }

  return {
    /**
     * Step 2 (per video, run by the extract child workflow): sample, resize, encode and
     * upload one video's frames, and record them in Postgres.
     *
     * Idempotent at two levels: frames already extracted with the same parameters (any
     * run) are reused from their content-addressed manifest; a retried attempt skips
     * uploads that already landed. Heartbeats every second with {@link ExtractHeartbeat};
     * a retried attempt resumes after the committed progress in the last heartbeat.
     * Cancellation kills ffmpeg and removes the temporary copy.
     *
     * @throws VideoDecodeError (not retried) naming the file and the reason.
     */
    async extractVideo(input: { videoId: string; options: ExtractOptions }): Promise<VideoExtractSummary> {
      const ctx = Context.current();
      // The heartbeat starts with the extraction itself (a reused video returns at once).
      let hb: Heartbeat<ExtractHeartbeat> | undefined;
      try {
        return await extractOne(input, {
          details: ctx.info.heartbeatDetails as ExtractHeartbeat | undefined,
          retried: ctx.info.attempt > 1,
          signal: ctx.cancellationSignal,
          beat: (p, now) => {
            if (!hb) hb = heartbeat(p);
            else if (now) hb.set(p);
            else hb.update(p);
          },
        });
      } finally {
        hb?.stop();
      }
    },

    /**
     * Step 2 for a batch of short videos (one activity, several videos; the batches come
     * from `planExtract` or `planBackfillPage`, see `planExtractBatches` in
     * `contracts/extraction.ts`): each video extracted as `extractVideo` does, one after
     * another, same frames, keys and manifests.
     *
     * A video that cannot be used (a non-retryable failure: `VideoDecodeError`,
     * `CatalogError`, ...) is reported in its item and the batch goes on. Any other failure
     * fails the attempt, and Temporal retries it: the heartbeat ({@link ExtractBatchHeartbeat})
     * carries every finished video's item, and the current video's progress, so a retried
     * attempt (a worker killed mid-batch, a transient error) skips the finished videos and
     * resumes the current one after its committed frames. Heartbeats every second and after
     * every video. Cancellation kills the running ffmpeg at once and removes its temporary
     * copy.
     *
     * @returns one item per video, in the batch's order, and how many a retried attempt skipped.
     */
    async extractVideos(input: { videoIds: string[]; options: ExtractOptions }): Promise<ExtractBatchResult> {
      const ctx = Context.current();
      const prior = ctx.info.heartbeatDetails as ExtractBatchHeartbeat | undefined;
      const wanted = new Set(input.videoIds);
      const done = new Map((prior?.done ?? []).filter((i) => wanted.has(i.videoId)).map((i) => [i.videoId, i]));
      const resumed = done.size;
      if (resumed) deps.logger.info({ resumed, videos: input.videoIds.length }, 'extract batch: skipping the videos an earlier attempt finished');
      const hb = heartbeat<ExtractBatchHeartbeat>({ done: [...done.values()], ...(prior?.current ? { current: prior.current } : {}) });
      try {
        for (const videoId of input.videoIds) {
          if (done.has(videoId)) continue;
          ctx.cancellationSignal.throwIfAborted();
          let item: ExtractBatchItem;
          try {
            const s = await extractOne(
              { videoId, options: input.options },
              {
                details: prior?.current?.videoId === videoId ? prior.current.progress : undefined,
                retried: ctx.info.attempt > 1,
                signal: ctx.cancellationSignal,
                beat: (p, now) => {
                  const next = { done: hb.progress.done, current: { videoId, progress: p } };
                  if (now) hb.set(next);
                  else hb.update(next);
                },
              },
            );
            item = { videoId, ok: true, summary: { frames: s.frames, sampled: s.sampled, decodeErrorCount: s.decodeErrorCount, reused: s.reused } };
          } catch (err) {
            const failure = failureOf(err);
            if (ctx.cancellationSignal.aborted || !isNonRetryable(failure.type)) throw err;
            deps.logger.warn({ videoId, ...failure }, 'extract batch: video failed; the batch goes on without it');
            item = { videoId, ok: false, failure };
          }
          done.set(videoId, item);
          hb.set({ done: [...done.values()] });
        }
        return { videos: input.videoIds.map((id) => done.get(id)!), resumed };
      } finally {
        hb.stop();
      }
    },

    /**
     * Cut a run's videos into extraction batches (`planExtractBatches` over the catalog's
     * durations and sizes; an id the catalog does not know goes alone, and its extraction
     * reports it), at least `lanes` batches when there are enough videos. Read-only.
     *
     * @returns batches of video ids, every id once, in the order given.
     */
    async planExtract(input: { videoIds: string[]; options: ExtractOptions; batching: ExtractBatching; lanes?: number }): Promise<string[][]> {
      return planExtractBatches(await repos.videos.sizesOf(pool, input.videoIds), input.options, input.batching, input.lanes);
    },

    /**
     * Step 2 (whole run): gather the per-video results into the extract step's manifest.
     *
     * @param failures videos whose child workflow failed, as the workflow saw them.
     * @param startedAtMs when the workflow started the step's first child (workflow time,
     *   epoch ms): the step's recorded duration counts from it (the run report's and the
     *   CLI's step times).
     */
    async finishExtract(input: {
      workflowId: string;
      options: ExtractOptions;
      failures: VideoFailure[];
      startedAtMs?: number;
    }): Promise<StepResult<ExtractStepSummary>> {
      return runStep(
        deps,
        input.workflowId,
        'extract',
        async () => {
          const search = await readStepManifest<SearchManifest>(store, input.workflowId, 'search');
          const paramsHash = extractionParamsHash(input.options);
          const failed = new Set(input.failures.map((f) => f.videoId));
          const videos: ExtractStepManifest['videos'] = [];
          const dropped = { nearBlack: 0, nearWhite: 0, blurred: 0 };
          let decodeErrorCount = 0;
          for (const hit of search.hits) {
            if (failed.has(hit.videoId)) continue;
            const key = framesManifestKey(hit.sha256, paramsHash);
            const m = await store.getJson<VideoFramesManifest>(key);
            if (!m) throw new MissingArtifactError(store.uri(key), `frames manifest of video ${hit.videoId} (its extract child reported success)`);
            videos.push({ videoId: hit.videoId, manifestKey: key, frames: m.frames.length });
            dropped.nearBlack += m.dropped.nearBlack;
            dropped.nearWhite += m.dropped.nearWhite;
            dropped.blurred += m.dropped.blurred;
            decodeErrorCount += m.decodeErrorCount;
          }
          const summary: ExtractStepSummary = {
            videos: search.hits.length,
            succeeded: videos.length,
            failed: input.failures.length,
            frames: videos.reduce((s, v) => s + v.frames, 0),
            dropped,
            decodeErrorCount,
          };
          return { summary, extra: { videos, failures: input.failures } };
        },
        { startedAtMs: input.startedAtMs },
      );
    },

    /**
     * Plan one page of a backfill: of the videos in the page's search manifest
     * (`runs/<page run>/search/`), those whose frames manifest for these options
     * (`frames/<sha256>/<params hash>/manifest.json`, written last by an extraction)
     * exists are reused as they are; the others are returned, in page order, to be
     * extracted, and, with `batching`, cut into extraction batches. Read-only, so safe to
     * retry.
     *
     * @param input.workflowId the page's run id.
     * @throws MissingArtifactError (not retried) when the page has no search manifest.
     */
    async planBackfillPage(input: {
      workflowId: string;
      page: number;
      options: ExtractOptions;
      batching?: ExtractBatching;
      lanes?: number;
    }): Promise<BackfillPagePlan> {
      const search = await readStepManifest<SearchManifest>(store, input.workflowId, 'search');
      const paramsHash = extractionParamsHash(input.options);
      const exists: boolean[] = new Array<boolean>(search.hits.length).fill(false);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(PLAN_CONCURRENCY, search.hits.length) }, async () => {
          while (next < search.hits.length) {
            const i = next++;
            exists[i] = (await store.head(framesManifestKey(search.hits[i]!.sha256, paramsHash))) !== undefined;
          }
        }),
      );
      const reusedIds = search.hits.filter((_, i) => exists[i]).map((h) => h.videoId);
      let reusedFrames = 0;
      if (reusedIds.length) {
        reusedFrames = await repos.frames.countOfExtraction(pool, reusedIds, paramsHash);
      }
      const toExtract = search.hits.filter((_, i) => !exists[i]).map((h) => h.videoId);
      return {
        page: input.page,
        videos: search.hits.length,
        toExtract,
        ...(input.batching ? { batches: planExtractBatches(await repos.videos.sizesOf(pool, toExtract), input.options, input.batching, input.lanes) } : {}),
        reused: reusedIds.length,
        reusedFrames,
      };
    },
  };
}
