/**
 * The model lifecycle's definitions: registry stages, references to a model
 * (`label@3`, `label@production`), the fixed evaluation set, evaluations on it, the
 * promotion gate's configuration and decision (the gate itself is
 * `activities/models/gate.ts`), and the batch predict workflow's input and result.
 */
import { z } from 'zod';
import type { BootstrapInterval } from './bootstrap';
import { InvalidInputError } from './failures';
import { ExtractOptions } from './inputs';
import type { LevelMetrics } from './manifests';

/** Registry stages. A version moves `candidate -> production -> archived` (a rollback brings an archived one back). */
export const MODEL_STAGES = ['candidate', 'production', 'archived'] as const;
/** A registry stage. */
export type ModelStage = (typeof MODEL_STAGES)[number];

/** `label`, `label@<version>` or `label@production` (`@latest`: the newest version). */
export interface ModelRef {
  label: string;
  /** A version number, or the version in production / the newest one. */
  version: number | 'production' | 'latest';
}

/**
 * Parse `label[@version|@production|@latest]`; a bare label means `@production`.
 *
 * @throws InvalidInputError naming the reference when it has no label or the version is not a positive integer, `production` or `latest`.
 */
export function parseModelRef(ref: string): ModelRef {
  const at = ref.lastIndexOf('@');
  const label = (at < 0 ? ref : ref.slice(0, at)).trim().toLowerCase();
  const v =
    at < 0
      ? 'production'
      : ref
          .slice(at + 1)
          .trim()
          .replace(/^v/, '');
  if (!label) throw new InvalidInputError(`model reference ${JSON.stringify(ref)} has no label (expected label[@version|@production])`);
  if (v === 'production' || v === 'latest') return { label, version: v };
  if (!/^[0-9]+$/.test(v) || Number(v) < 1) {
    throw new InvalidInputError(`model reference ${JSON.stringify(ref)}: version ${JSON.stringify(v)} is not a positive integer, "production" or "latest"`);
  }
  return { label, version: Number(v) };
}

/** One frame of an evaluation set. */
export interface EvalSetFrame {
  frameKey: string;
  videoId: string;
  /** The frame's true class: the label itself, another label the models know, or `other`. */
  class: string;
  /** `consensus`: two people agreed in Label Studio; `catalog`: the video's catalog label (no person checked the frame). */
  labelSource: 'consensus' | 'catalog';
}

/** A version of a label's evaluation set (`eval_sets` + `eval_set_frames`). */
export interface EvalSet {
  label: string;
  version: number;
  frames: EvalSetFrame[];
  videos: string[];
  /** Frames per class. */
  counts: Record<string, number>;
  actor: string;
  reason: string;
  createdAt: string;
}

/** Metrics of one model on one evaluation-set version (`model_evaluations.metrics`). */
export interface EvalSetMetrics {
  frames: LevelMetrics;
  videos: LevelMetrics;
  /** Frames of the set whose class the model does not have (left out of the metrics). */
  skippedFrames: number;
  /** Aggregation used for the video level. */
  aggregation: 'mean-probability';
}

/** An evaluation of a model on the fixed set, as the registry returns it. */
export interface ModelEvaluation {
  name: string;
  version: number;
  role: 'teacher' | 'student';
  evalVersion: number;
  metrics: EvalSetMetrics;
  /** S3 key of the per-frame probabilities (`{labels, frames: [{frameKey, videoId, class, probs}]}`). */
  predictionsKey: string;
  createdAt: string;
}

/** The gate's settings (`REELSET_PROMOTION_*`). */
export interface GateConfig {
  /** The candidate's video-level balanced accuracy must be at least production's plus this (absolute, 0..1). */
  margin: number;
  /** No label's frame-level recall may drop by more than this below production's (absolute, 0..1). */
  recallTolerance: number;
  /**
   * `above-chance`: the lower end of the bootstrap interval of the candidate's video-level
   * balanced accuracy must reach this, for a label against `other` (2 classes, chance
   * 0.5). With k classes the minimum is as far from chance (1/k) towards 1 as this is
   * from 0.5 ({@link chanceMinimum}). 0 (or less) lets any 2-class model through.
   */
  minLowerBound: number;
  /** Coverage of that interval (default 0.95). */
  confidence?: number;
  /** Bootstrap resamples (default 2,000). */
  resamples?: number;
}

/** One rule's outcome. */
export interface GateRule {
  /** `first-model` appears only in decisions recorded before issue 17 (a point estimate against `REELSET_PROMOTION_MIN_SCORE`); `above-chance` replaced it. */
  rule: 'eval-set' | 'evaluated' | 'above-chance' | 'first-model' | 'video-margin' | 'label-recall';
  passed: boolean;
  /** What was compared, in words with the numbers. */
  detail: string;
}

/**
 * The bootstrap interval of a candidate's video-level balanced accuracy on the fixed set
 * ({@link scoreInterval}), with the chance level and the minimum its lower end was held to.
 */
export interface ScoreInterval extends BootstrapInterval {
  /** Classes with at least one video in the set (k). */
  classes: number;
  /** Balanced accuracy of a model that always answers the same class: 1/k (null when k = 0). */
  chance: number | null;
  /** The minimum for the lower end, {@link chanceMinimum} of the configured `minLowerBound` (null when k < 2). */
  minimum: number | null;
  /** P(a model guessing with chance 1/k per video does as well on these videos) ({@link chanceTest}); 1 when k < 2. */
  guessP: number;
  /** Largest `guessP` the rule accepts, (1 - confidence) / 2 (0.025), when the minimum is above chance; null when it is not (no guess test). */
  guessLevel: number | null;
}

/** The gate's decision. */
export interface GateDecision {
  promote: boolean;
  /** Every rule checked, in order; on a hold, the failing ones say why. */
  rules: GateRule[];
  /** One line: "promoted: ..." or "held back: <failing rule details>". */
  reason: string;
  /** `score`: video-level balanced accuracy; `interval`: its bootstrap interval (null when the candidate was not evaluated). */
  candidate: { name: string; version: number; score: number | null; interval?: ScoreInterval | null };
  production: { version: number; score: number | null } | null;
  evalVersion: number | null;
  config: GateConfig;
}

/**
 * Balanced accuracy (mean recall over the labels that have examples; Brodersen et al.
 * 2010): the gate's video-level score, because an evaluation set usually holds many more
 * `other` videos than videos of the label, and plain accuracy would let a model that
 * misses the label win on the others.
 *
 * @returns a number in [0, 1], or null when no label has an example.
 */
export function balancedAccuracy(level: LevelMetrics): number | null {
  const r = Object.values(level.perLabel)
    .map((m) => m.recall)
    .filter((x): x is number => x !== null);
  return r.length ? r.reduce((a, b) => a + b, 0) / r.length : null;
}

/** A stage change in the registry (`model_transitions`). */
export interface ModelTransition {
  name: string;
  version: number;
  from: ModelStage | null;
  to: ModelStage;
  actor: string;
  reason: string;
  gate: GateDecision | null;
  at: string;
}

/** What the automatic promotion (retrain) reports. */
export interface PromotionOutcome {
  decision: 'promoted' | 'held-back';
  gate: GateDecision;
  /** The production version after the step. */
  production: number | null;
}

// ------------------------------------------------------------------ batch predict ---

/**
 * Most videos of one batch predict. The history no longer bounds it (the extraction
 * continues as new); what does is the size of `predictVideos`' one input, a row per video
 * (its id and frames manifest key, ~150 bytes): 5,000 videos make ~0.8 MB, well under
 * Temporal's 2 MB payload limit. Going further needs `predictVideos` to take pages.
 */
export const BATCH_PREDICT_MAX_VIDEOS = 5000;

/** Input of the batch predict workflow (`batchPredictWorkflow`). */
export const BatchPredictInput = z.object({
  /** The model: `label`, `label@<version>`, `label@production` (default) or `label@latest`. */
  model: z.string().min(1),
  /** Catalog videos to classify; when empty, videos of `catalogLabel` (or the whole catalog), at most `maxVideos`. */
  videoIds: z.array(z.string().min(1)).max(BATCH_PREDICT_MAX_VIDEOS).default([]),
  /** Select the catalog videos carrying this label (or a descendant). */
  catalogLabel: z.string().min(1).optional(),
  /** At most {@link BATCH_PREDICT_MAX_VIDEOS} (the size of `predictVideos`' input, not the history, bounds it). */
  maxVideos: z.number().int().min(1).max(BATCH_PREDICT_MAX_VIDEOS).default(100),
  /** Frame sampling (the pipeline's extraction; frames already extracted with the same options are reused). */
  extract: ExtractOptions.prefault({ mode: 'fps', fps: 1, maxFramesPerVideo: 32 }),
  /** Extraction child workflows at once. */
  concurrency: z.number().int().min(1).max(64).default(4),
  heartbeatTimeoutS: z.number().int().min(2).max(3600).default(30),
  gpuTaskQueue: z.string().min(1).default('reelset-gpu'),
  /** A run stops starting extraction children and continues as new before its history reaches this many events (Temporal warns at 10,240). */
  maxHistoryEvents: z.number().int().min(200).max(50_000).default(8000),
});
/** Parsed input of the batch predict workflow. */
export type BatchPredictInput = z.infer<typeof BatchPredictInput>;
/** What a caller passes (defaults filled in by the workflow). */
export type BatchPredictRequest = z.input<typeof BatchPredictInput>;

/** One video's line in the batch predictions (`runs/<id>/predict/predictions.json`). */
export interface BatchVideoPrediction {
  videoId: string;
  /** The aggregated class (mean probability of the in-scope frames), `unknown`, or null when the video failed. */
  label: string | null;
  probabilities: Record<string, number>;
  frames: number;
  unknownFrames: number;
  error?: { type: string; message: string };
}

/** Result of the batch predict workflow. */
export interface BatchPredictResult {
  workflowId: string;
  model: { name: string; version: number; stage: string };
  videos: number;
  failed: number;
  /** Videos per aggregated class (and `unknown`). */
  perLabel: Record<string, number>;
  /** `frame_labels` rows written (`source = 'model'`). */
  frameLabels: number;
  /** S3 key of every frame's and video's prediction. */
  predictionsKey: string;
}
