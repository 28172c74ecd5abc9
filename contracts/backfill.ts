/**
 * The backfill: extract (and embed) frames for every catalog video of a label, at any
 * scale. Its input schema, the progress query, the summaries its activities return and
 * the bounds that keep each run's history small. Pure: safe in the workflow sandbox.
 */
import { defineQuery } from '@temporalio/workflow';
import { z } from 'zod';
import { ExtractOptions, NewCategoryInput } from './inputs';
import { ExtractBatching } from './extraction';
import type { VideoFailure } from './manifests';

/**
 * Upper bound of the parent's history events per extraction (a batch's `extractVideos`
 * activity, or with batching off one video's child): its scheduled (initiated), started
 * and closed events, plus at most two workflow tasks (scheduled, started, completed)
 * woken by them. Measured runs use 4 to 6; the bound decides when a run stops taking new
 * pages and continues as new. It is counted per video (a page is budgeted as `pageSize`
 * extractions), which batches only undercut.
 */
export const BACKFILL_EVENTS_PER_VIDEO = 9;

/** Upper bound of the parent's history events per page besides its videos: four activities and their workflow tasks. */
export const BACKFILL_EVENTS_PER_PAGE = 30;

/** Events a run keeps in reserve for its start, its first activities and its close (continue-as-new or completion). */
export const BACKFILL_EVENTS_RESERVE = 60;

/** Most failures carried in the workflow's state and result (every failure is in its page's extract manifest). */
export const MAX_REPORTED_FAILURES = 20;

/** An `s3://bucket/prefix` URI: bucket naming rules of S3 (3–63 characters), any prefix. */
export const S3Uri = z
  .string()
  .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'expected s3://bucket/prefix (bucket: 3-63 lower-case letters, digits, "." or "-")');

const absolutePath = z.string().min(1).regex(/^\//, 'must be an absolute path (workers read it)');

/**
 * Where new videos come from before a backfill selects them (ingested by the
 * `ingestSource` activity on a video worker):
 * - `prefix`: every video object under an S3 prefix of the same endpoint and credentials;
 * - `folder`: every video file of a folder the workers can read;
 * - `catalog`: a catalog file (`catalog.json` format) the workers can read.
 */
export const IngestSource = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('prefix'), uri: S3Uri }),
  z.object({ kind: z.literal('folder'), path: absolutePath }),
  z.object({ kind: z.literal('catalog'), path: absolutePath }),
]);
export type IngestSource = z.infer<typeof IngestSource>;

/** A catalog video id (the catalog file's rule). */
const VideoId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, "_", "-", "." only')
  .max(200);

/** A day (`2026-03-01`, midnight UTC) or an ISO 8601 time with an offset. */
export const SinceDate = z.union([z.iso.date(), z.iso.datetime({ offset: true })], {
  error: 'expected a date (YYYY-MM-DD, UTC) or an ISO 8601 time with offset',
});

/**
 * Input of the backfill workflow: `{"label": "bicycle"}` is enough, and backfills
 * every catalog video of the label (its synonyms, descendants and title matches, as
 * the search finds positives, with no cap). At most one selector narrows it:
 * `since`, `videoIds` or `ingest`.
 */
export const BackfillInput = z
  .object({
    label: NewCategoryInput.shape.label,
    /** Only videos ingested at or after this time (`videos.created_at`). */
    since: SinceDate.optional(),
    /** Only these videos (each must carry the label). */
    videoIds: z
      .array(VideoId)
      .min(1)
      .max(1000)
      .refine((ids) => new Set(ids).size === ids.length, 'video ids must be distinct')
      .optional(),
    /** Ingest this source first, then backfill the label's videos among what it ingested. */
    ingest: IngestSource.optional(),
    /** Frame sampling and encoding, as new-category's `extract`; frames made with the same options are reused. */
    extract: ExtractOptions.prefault({}),
    /** Also embed the frames (cached by content, as the embed step does). */
    embed: z.boolean().default(true),
    /** Extractions at once: batches (`extractVideos` activities), or child workflows with batching off. */
    concurrency: z.number().int().positive().max(64).default(4),
    /** How a page's videos are cut into activities: short videos several to an activity (`auto`), or one child workflow each (`off`). */
    batching: ExtractBatching.prefault({}),
    /** Videos per page: a page is planned, extracted, gathered and embedded together (`runs/<page>/...`). */
    pageSize: z.number().int().min(1).max(500).default(100),
    /** A run stops taking pages and continues as new before its history reaches this many events (Temporal warns at 10,240). */
    maxHistoryEvents: z.number().int().min(300).max(50_000).default(8000),
    /** Heartbeat timeout of the long activities, seconds. */
    heartbeatTimeoutS: z.number().int().min(2).max(3600).default(30),
    /**
     * What the run reads, as the client saw it when it chose the workflow id: a digest of
     * the selected videos, or of the source's listing. Part of the id, so a backfill
     * over a changed catalog is a new run; not otherwise used.
     */
    generation: z.string().min(1).max(64).optional(),
  })
  .refine((i) => [i.since, i.videoIds, i.ingest].filter((x) => x !== undefined).length <= 1, {
    message: 'give at most one of since, videoIds, ingest',
    path: ['since'],
  })
  .refine((i) => i.maxHistoryEvents >= 2 * i.pageSize * BACKFILL_EVENTS_PER_VIDEO + 2 * BACKFILL_EVENTS_PER_PAGE + BACKFILL_EVENTS_RESERVE, {
    message: `maxHistoryEvents must hold two pages: at least 2 * pageSize * ${BACKFILL_EVENTS_PER_VIDEO} + ${2 * BACKFILL_EVENTS_PER_PAGE + BACKFILL_EVENTS_RESERVE}`,
    path: ['maxHistoryEvents'],
  });
export type BackfillInput = z.infer<typeof BackfillInput>;
/** What a caller may pass: every field but `label` is optional. */
export type BackfillRequest = z.input<typeof BackfillInput>;

/** Where a backfill is. */
export type BackfillPhase = 'start' | 'ingest' | 'select' | 'extract' | 'done' | 'failed' | 'cancelled';

/** Counts of a backfill, carried through continue-as-new. */
export interface BackfillCounts {
  /** Videos selected. */
  total: number;
  /** Videos whose frames this backfill extracted. */
  extracted: number;
  /** Videos whose frames already existed with the same options (nothing done). */
  reused: number;
  /** Videos whose extraction failed (the backfill went on). */
  failed: number;
  /** Frames this backfill extracted. */
  frames: number;
  /** Frames that already existed. */
  framesReused: number;
  /** Frames embedded by this backfill / found in the embedding cache. */
  embedded: number;
  embeddingsCached: number;
  /** Pages finished (gathered and embedded). */
  pagesDone: number;
  pages: number;
}

/** Answer of {@link backfillProgressQuery}. */
export interface BackfillProgress extends BackfillCounts {
  label: string;
  phase: BackfillPhase;
  /** extracted + reused + failed. */
  done: number;
  /** Extract children running now. */
  running: number;
  /** Time the backfill started (first run of the chain), ISO 8601. */
  startedAt: string;
  /** Seconds since then. */
  elapsedS: number;
  /** Videos finished (extracted or failed) per second since the start; reused videos are not counted. */
  videosPerSecond: number;
  /** This run's number in the continue-as-new chain (1 = the first) and its history length now. */
  run: number;
  historyLength: number;
}

/** Query: where a backfill is. Use as `handle.query(backfillProgressQuery)`. */
export const backfillProgressQuery = defineQuery<BackfillProgress>('backfillProgress');

/** Summary of the `ingestSource` activity (its manifest, `runs/<backfill>/ingest/manifest.json`, lists the ids). */
export interface IngestSourceSummary {
  /** The source, for people: `s3://bucket/prefix`, a folder or a catalog file. */
  source: string;
  /** Video files or objects found. */
  listed: number;
  inserted: number;
  updated: number;
  unchanged: number;
  /** Files uploaded to `videos/<sha256>` (absent before). */
  uploaded: number;
  /** Objects already ingested with the same ETag and size (prefix), or folder files whose content is already the video's: not probed or uploaded again. */
  skippedUnchanged: number;
  failed: number;
  /** The first failures: id, file and reason. */
  failures: Array<{ id: string; file: string; reason: string }>;
}

/** Summary of the `selectBackfill` activity: the selection, cut into pages (`runs/<page>/search/manifest.json`). */
export interface BackfillSelectSummary {
  label: string;
  total: number;
  pages: number;
  pageSize: number;
  /** Digest of the selected (video id, sha256) pairs: the catalog generation the run read. */
  digest: string;
  /** Requested or ingested videos left out, with why (the first {@link MAX_REPORTED_FAILURES} of each). */
  missing: string[];
  notOfLabel: string[];
  missingCount: number;
  notOfLabelCount: number;
}

/** What `planBackfillPage` found for one page: which videos still need frames. */
export interface BackfillPagePlan {
  page: number;
  videos: number;
  /** Videos without a frames manifest for these options, in page order. */
  toExtract: string[];
  /** `toExtract` cut into extraction batches (`planExtractBatches`), when the request asked for batching. */
  batches?: string[][];
  /** Videos whose frames manifest exists: nothing to do. */
  reused: number;
  /** Frames of those videos (rows in `frames`). */
  reusedFrames: number;
}

/** State a backfill carries through continue-as-new: a page cursor and counts, never video lists. */
export interface BackfillState {
  /** Next page to plan. */
  cursor: number;
  counts: BackfillCounts;
  failures: VideoFailure[];
  /** Start of the first run, epoch milliseconds. */
  startedAtMs: number;
  /** Runs before this one. */
  runsBefore: number;
  /** Largest history length any earlier run reached (events, measured just before it continued as new). */
  maxHistoryLength: number;
  select: BackfillSelectSummary;
  ingest?: IngestSourceSummary;
}

/** Result of the backfill workflow: small, for the history and the CLI. */
export interface BackfillResult extends BackfillCounts {
  workflowId: string;
  label: string;
  /** `runs/<workflowId>`: the selection, and `runs/<workflowId>-p<N>` per page. */
  runPrefix: string;
  ingest?: IngestSourceSummary;
  select: BackfillSelectSummary;
  /** The first failures (every one is in its page's extract manifest). */
  failures: VideoFailure[];
  /** Runs in the continue-as-new chain, and the largest history of any of them (events). */
  runs: number;
  maxHistoryLength: number;
  durationS: number;
  videosPerSecond: number;
}
