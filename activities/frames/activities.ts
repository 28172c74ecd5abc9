import { createWriteStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { Context } from '@temporalio/activity';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { ExtractOptions } from '../../workflows/input';
import type { ActivityDeps } from '../common/deps';
import { InvalidInputError, VideoDecodeError } from '../common/errors';
import { readStepManifest, runStep, type StepResult } from '../storage/runs';
import type { SearchManifest } from '../catalog/activities';
import { extractFrames, extractionParamsHash, type ExtractionResult, type FrameRecord } from './extract';
import { probeVideo, type VideoProbe } from './probe';

/** Summary of one video's extraction, returned by its child workflow. */
export interface VideoExtractSummary {
  videoId: string;
  frames: number;
  sampled: number;
  dropped: ExtractionResult['dropped'];
  decodeErrorCount: number;
  /** Content-addressed manifest: `frames/<sha256>/<paramsHash>/manifest.json`. */
  manifestKey: string;
  /** True when an earlier run had already extracted these frames with the same parameters. */
  reused: boolean;
}

/** Content-addressed manifest of one video's frames for one set of extraction parameters. */
export interface VideoFramesManifest {
  videoId: string;
  videoSha256: string;
  paramsHash: string;
  options: ExtractOptions;
  probe: VideoProbe;
  sampledFps: number;
  sampled: number;
  frames: FrameRecord[];
  dropped: ExtractionResult['dropped'];
  decodeErrors: string[];
  decodeErrorCount: number;
}

/** A video whose extraction failed, as the workflow reports it. */
export interface VideoFailure {
  videoId: string;
  /** Failure type, e.g. `VideoDecodeError`. */
  type: string;
  message: string;
}

/** Summary of the extract step. */
export interface ExtractStepSummary {
  videos: number;
  succeeded: number;
  failed: number;
  frames: number;
  dropped: ExtractionResult['dropped'];
  decodeErrorCount: number;
}

/** The extract step's manifest payload. */
export interface ExtractStepManifest {
  summary: ExtractStepSummary;
  /** Per video: its frames manifest key and counts (only videos that succeeded). */
  videos: Array<{ videoId: string; manifestKey: string; frames: number }>;
  failures: VideoFailure[];
}

/** Key of a video's frames manifest. */
export function framesManifestKey(videoSha256: string, paramsHash: string): string {
  return `frames/${videoSha256}/${paramsHash}/manifest.json`;
}

/** Frame extraction activities (CPU video task queue). */
export function createFrameActivities(deps: ActivityDeps) {
  const { store, pool, config } = deps;

  async function loadVideo(videoId: string) {
    const res = await pool.query<{ sha256: string; s3_key: string; file_name: string }>(
      'SELECT sha256, s3_key, file_name FROM videos WHERE id = $1',
      [videoId],
    );
    const row = res.rows[0];
    if (!row) throw new InvalidInputError(`video ${JSON.stringify(videoId)} is not in the catalog`);
    return row;
  }

  async function download(key: string, dest: string, signal: AbortSignal): Promise<void> {
    const res = await store.client.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: signal });
    await pipeline(res.Body as Readable, createWriteStream(dest), { signal });
  }

  return {
    /**
     * Step 2 (per video, run by the extract child workflow): sample, resize, encode and
     * upload one video's frames, and record them in Postgres.
     *
     * Idempotent at two levels: frames already extracted with the same parameters (any
     * run) are reused from their content-addressed manifest; a retried attempt skips
     * uploads that already landed. Heartbeats every frame with `{ frames, timestampS }`.
     * Cancellation kills ffmpeg and removes the temporary copy.
     *
     * @throws VideoDecodeError (not retried) naming the file and the reason.
     */
    async extractVideo(input: { videoId: string; options: ExtractOptions }): Promise<VideoExtractSummary> {
      const ctx = Context.current();
      const video = await loadVideo(input.videoId);
      const paramsHash = extractionParamsHash(input.options);
      const manifestKey = framesManifestKey(video.sha256, paramsHash);
      const summarize = (m: VideoFramesManifest, reused: boolean): VideoExtractSummary => ({
        videoId: input.videoId,
        frames: m.frames.length,
        sampled: m.sampled,
        dropped: m.dropped,
        decodeErrorCount: m.decodeErrorCount,
        manifestKey,
        reused,
      });
      const existing = await store.getJson<VideoFramesManifest>(manifestKey);
      if (existing) return summarize(existing, true);

      const prefix = `frames/${video.sha256}/${paramsHash}/`;
      const stored = new Set(await store.list(prefix));
      const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-extract-'));
      try {
        const file = path.join(tmp, `video${path.extname(video.file_name)}`);
        await download(video.s3_key, file, ctx.cancellationSignal);
        // Errors name the catalog file and video id, not the temporary copy.
        const named = `${video.file_name} (video ${input.videoId})`;
        const rename = (err: unknown): never => {
          if (err instanceof VideoDecodeError) throw new VideoDecodeError(named, err.reason, { cause: err });
          throw err;
        };
        const probe: VideoProbe = await probeVideo(file, config.FFPROBE_PATH).catch(rename);
        const result = await extractFrames(
          file,
          video.sha256,
          probe,
          input.options,
          {
            has: (key) => stored.has(key),
            put: async (frame, bytes) => {
              await store.put(frame.key, bytes, input.options.format === 'webp' ? 'image/webp' : 'image/jpeg');
            },
          },
          {
            ffmpegPath: config.FFMPEG_PATH,
            signal: ctx.cancellationSignal,
            onFrame: (p) => ctx.heartbeat(p),
          },
        ).catch(rename);
        // Rows after objects: a row always points at a stored frame.
        // One statement for all rows: atomic, and idempotent on the content-derived key.
        const fr = result.frames;
        await pool.query(
          `INSERT INTO frames (s3_key, video_id, params_hash, frame_index, timestamp_s, width, height, bytes, sha256, sharpness, brightness)
           SELECT k, $2, $3, i, t, w, h, b, s, sh, br
             FROM unnest($1::text[], $4::int[], $5::float8[], $6::int[], $7::int[], $8::int[], $9::text[], $10::float8[], $11::float8[])
               AS r(k, i, t, w, h, b, s, sh, br)
           ON CONFLICT (s3_key) DO NOTHING`,
          [
            fr.map((f) => f.key), input.videoId, paramsHash, fr.map((f) => f.index), fr.map((f) => f.timestampS),
            fr.map((f) => f.width), fr.map((f) => f.height), fr.map((f) => f.bytes), fr.map((f) => f.sha256),
            fr.map((f) => f.sharpness), fr.map((f) => f.brightness),
          ],
        );
        const manifest: VideoFramesManifest = {
          videoId: input.videoId,
          videoSha256: video.sha256,
          paramsHash,
          options: input.options,
          probe,
          sampledFps: result.sampledFps,
          sampled: result.sampled,
          frames: result.frames,
          dropped: result.dropped,
          decodeErrors: result.decodeErrors,
          decodeErrorCount: result.decodeErrorCount,
        };
        await store.putJson(manifestKey, manifest);
        return summarize(manifest, false);
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
      }
    },

    /**
     * Step 2 (whole run): gather the per-video results into the extract step's manifest.
     *
     * @param failures videos whose child workflow failed, as the workflow saw them.
     */
    async finishExtract(input: { workflowId: string; options: ExtractOptions; failures: VideoFailure[] }): Promise<StepResult<ExtractStepSummary>> {
      return runStep(deps, input.workflowId, 'extract', async () => {
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
          if (!m) throw new Error(`frames manifest missing for video ${hit.videoId}: ${store.uri(key)}`);
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
      });
    },
  };
}
