/**
 * The model lifecycle (issue 13): registry stages, references to a model
 * (`label@3`, `label@production`), the fixed evaluation set, evaluations on it, and the
 * promotion gate's rules. Pure: the gate is a function of two evaluations and a
 * configuration, so the activity, the CLI and the tests share one implementation.
 */
import { z } from 'zod';
import { InvalidInputError } from './failures';
import { ExtractOptions } from './inputs';
import { keySegment } from './keys';
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
  const v = at < 0 ? 'production' : ref.slice(at + 1).trim().replace(/^v/, '');
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
  /** With no production model, the candidate's video-level balanced accuracy must reach this. */
  minScore: number;
}

/** One rule's outcome. */
export interface GateRule {
  rule: 'eval-set' | 'evaluated' | 'first-model' | 'video-margin' | 'label-recall';
  passed: boolean;
  /** What was compared, in words with the numbers. */
  detail: string;
}

/** The gate's decision. */
export interface GateDecision {
  promote: boolean;
  /** Every rule checked, in order; on a hold, the failing ones say why. */
  rules: GateRule[];
  /** One line: "promoted: ..." or "held back: <failing rule details>". */
  reason: string;
  candidate: { name: string; version: number; score: number | null };
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

const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/**
 * The promotion gate. Rules, in order:
 *
 * 1. `eval-set`: the label has a fixed evaluation set (`evalVersion` not null).
 * 2. `evaluated`: the candidate (and production, when there is one) was evaluated on that
 *    same version, so the numbers compare.
 * 3. No production model: `first-model`: the candidate's video-level balanced accuracy
 *    reaches `minScore`.
 * 4. `video-margin`: candidate's video-level balanced accuracy >= production's + `margin`.
 * 5. `label-recall`: for each label with examples in the set, the candidate's frame-level
 *    recall >= production's - `recallTolerance` (frames, not videos: a set has a few videos
 *    per label, so a video-level recall moves in steps of 25-50% and a tolerance of a few
 *    percent would mean "no change at all").
 *
 * @param candidate the candidate's evaluation on the current set version, or null.
 * @param production the production model's, or null when there is no production model (its
 *   `version` is given separately so a missing evaluation is reported).
 */
export function promotionGate(input: {
  name: string;
  candidateVersion: number;
  candidate: EvalSetMetrics | null;
  productionVersion: number | null;
  production: EvalSetMetrics | null;
  evalVersion: number | null;
  config: GateConfig;
}): GateDecision {
  const { config } = input;
  const rules: GateRule[] = [];
  const cScore = input.candidate ? balancedAccuracy(input.candidate.videos) : null;
  const pScore = input.production ? balancedAccuracy(input.production.videos) : null;
  const decide = (): GateDecision => {
    const failed = rules.filter((r) => !r.passed);
    const promote = failed.length === 0;
    return {
      promote,
      rules,
      reason: promote ? `promoted: ${rules.map((r) => r.detail).join('; ')}` : `held back: ${failed.map((r) => `${r.rule}: ${r.detail}`).join('; ')}`,
      candidate: { name: input.name, version: input.candidateVersion, score: cScore },
      production: input.productionVersion === null ? null : { version: input.productionVersion, score: pScore },
      evalVersion: input.evalVersion,
      config,
    };
  };
  if (input.evalVersion === null) {
    rules.push({ rule: 'eval-set', passed: false, detail: `label "${input.name}" has no fixed evaluation set (reelset evalset grow ${input.name} --videos ...)` });
    return decide();
  }
  rules.push({ rule: 'eval-set', passed: true, detail: `evaluation set v${input.evalVersion}` });
  const missing: string[] = [];
  if (!input.candidate) missing.push(`candidate v${input.candidateVersion}`);
  if (input.productionVersion !== null && !input.production) missing.push(`production v${input.productionVersion}`);
  if (missing.length) {
    rules.push({ rule: 'evaluated', passed: false, detail: `not evaluated on evaluation set v${input.evalVersion}: ${missing.join(', ')}` });
    return decide();
  }
  const cand = input.candidate!;
  if (input.productionVersion === null) {
    rules.push({
      rule: 'first-model',
      passed: cScore !== null && cScore >= config.minScore,
      detail: `no production model; video balanced accuracy ${pct(cScore)} vs minimum ${pct(config.minScore)}`,
    });
    return decide();
  }
  const prod = input.production!;
  rules.push({
    rule: 'video-margin',
    passed: cScore !== null && pScore !== null && cScore >= pScore + config.margin - 1e-9,
    detail: `video balanced accuracy ${pct(cScore)} vs production v${input.productionVersion} ${pct(pScore)} + margin ${pct(config.margin)}`,
  });
  const drops: string[] = [];
  const kept: string[] = [];
  for (const [label, pm] of Object.entries(prod.frames.perLabel)) {
    const cm = cand.frames.perLabel[label];
    if (pm.recall === null) continue;
    const cr = cm?.recall ?? null;
    if (cr === null || cr < pm.recall - config.recallTolerance - 1e-9) drops.push(`${label} ${pct(cr)} < ${pct(pm.recall)} - ${pct(config.recallTolerance)}`);
    else kept.push(`${label} ${pct(cr)} (production ${pct(pm.recall)})`);
  }
  rules.push({
    rule: 'label-recall',
    passed: drops.length === 0,
    detail: drops.length ? `frame recall lost beyond tolerance: ${drops.join(', ')}` : `frame recall within ${pct(config.recallTolerance)}: ${kept.join(', ')}`,
  });
  return decide();
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

/** S3 key of a model's per-frame predictions on an evaluation-set version: `evaluations/<name>/v<version>/<role>/eval-v<E>.json`. */
export function evaluationKey(name: string, version: number, role: 'teacher' | 'student', evalVersion: number): string {
  return `evaluations/${keySegment(name)}/v${version}/${keySegment(role)}/eval-v${evalVersion}.json`;
}

// ------------------------------------------------------------------ batch predict ---

/** Input of the batch predict workflow (`batchPredictWorkflow`). */
export const BatchPredictInput = z.object({
  /** The model: `label`, `label@<version>`, `label@production` (default) or `label@latest`. */
  model: z.string().min(1),
  /** Catalog videos to classify; when empty, videos of `catalogLabel` (or the whole catalog), at most `maxVideos`. */
  videoIds: z.array(z.string().min(1)).max(2000).default([]),
  /** Select the catalog videos carrying this label (or a descendant). */
  catalogLabel: z.string().min(1).optional(),
  /** At most 2,000: one extraction child per video in one history (no continue-as-new yet). */
  maxVideos: z.number().int().min(1).max(2000).default(100),
  /** Frame sampling (the pipeline's extraction; frames already extracted with the same options are reused). */
  extract: ExtractOptions.prefault({ mode: 'fps', fps: 1, maxFramesPerVideo: 32 }),
  /** Extraction child workflows at once. */
  concurrency: z.number().int().min(1).max(64).default(4),
  heartbeatTimeoutS: z.number().int().min(2).max(3600).default(30),
  gpuTaskQueue: z.string().min(1).default('reelset-gpu'),
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

/** S3 key of a batch predict run's predictions. */
export function batchPredictionsKey(workflowId: string): string {
  return `runs/${keySegment(workflowId)}/predict/predictions.json`;
}
