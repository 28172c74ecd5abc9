/**
 * The model lifecycle (issue 13): registry stages, references to a model
 * (`label@3`, `label@production`), the fixed evaluation set, evaluations on it, and the
 * promotion gate's rules. Pure: the gate is a function of two evaluations and a
 * configuration, so the activity, the CLI and the tests share one implementation.
 */
import { z } from 'zod';
import { balancedAccuracyInterval, BOOTSTRAP_DEFAULTS, chanceTest, outcomesFromConfusion, type BootstrapInterval } from './bootstrap';
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

const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/**
 * The minimum for the lower end of the interval with k classes: as far from chance (1/k)
 * towards a perfect score as `minLowerBound` is from 0.5 with two classes, i.e.
 * `1/k + (minLowerBound - 0.5) * (1 - 1/k) / 0.5`. In chance-corrected terms (adjusted
 * balanced accuracy, `(BA - 1/k) / (1 - 1/k)`, scikit-learn's `adjusted=True`) the
 * default 0.6 asks for 0.2 whatever k: 0.6 with 2 classes, 0.467 with 3, 0.36 with 5.
 * Why relative to chance: a fixed 0.6 would be 1.2 times chance with 2 classes and 3
 * times chance with 5, so a model of several labels would need far more evidence than a
 * label against `other`; a fixed distance above chance (1/k + 0.1) would ask for less
 * and less as k grows, while the room above chance shrinks by (1 - 1/k).
 *
 * @param minLowerBound the configured minimum for 2 classes (`REELSET_PROMOTION_MIN_LOWER_BOUND`).
 * @param classes k, the classes with videos in the set; at least 2.
 * @throws InvalidInputError when k < 2 (one class has no chance level to beat).
 */
export function chanceMinimum(minLowerBound: number, classes: number): number {
  if (!Number.isInteger(classes) || classes < 2) throw new InvalidInputError(`chanceMinimum: needs at least 2 classes, got ${classes}`);
  const chance = 1 / classes;
  return chance + ((minLowerBound - 0.5) * (1 - chance)) / 0.5;
}

/**
 * The bootstrap interval of a model's video-level balanced accuracy on an evaluation
 * ({@link balancedAccuracyInterval} on the videos of `metrics.videos.confusion`: each
 * video's true class and predicted class, resampled within its true class, so no
 * resample lacks a class), with the chance level and the gate's minimum for its lower end.
 *
 * @param config `minLowerBound`, `confidence` (default 0.95) and `resamples` (default 2,000) of the gate.
 * @returns the interval; with no video, every number null; with one class, `minimum` null.
 */
export function scoreInterval(metrics: EvalSetMetrics, config: Pick<GateConfig, 'minLowerBound' | 'confidence' | 'resamples'>): ScoreInterval {
  const { truth, predicted } = outcomesFromConfusion(metrics.videos.confusion ?? []);
  const interval = balancedAccuracyInterval(truth, predicted, {
    confidence: config.confidence ?? BOOTSTRAP_DEFAULTS.confidence,
    resamples: config.resamples ?? BOOTSTRAP_DEFAULTS.resamples,
  });
  const classes = new Set(truth).size;
  const minimum = classes >= 2 ? chanceMinimum(config.minLowerBound, classes) : null;
  const guess = chanceTest(truth, predicted, { draws: interval.resamples });
  return {
    ...interval,
    classes,
    chance: classes ? 1 / classes : null,
    minimum,
    guessP: guess.pValue,
    guessLevel: minimum !== null && minimum > 1 / classes + 1e-9 ? (1 - interval.confidence) / 2 : null,
  };
}

/** The `above-chance` rule on a candidate's interval. */
function aboveChance(iv: ScoreInterval): GateRule {
  const videos = `${iv.units} video${iv.units === 1 ? '' : 's'}`;
  if (iv.units === 0) return { rule: 'above-chance', passed: false, detail: 'no video-level result to bootstrap (evaluate the model again)' };
  if (iv.minimum === null || iv.lower === null || iv.chance === null) {
    return { rule: 'above-chance', passed: false, detail: `the ${videos} of the evaluation set are all of one class: no chance level to beat (grow the set with videos of every class)` };
  }
  const ci = `${pct(iv.estimate)} (${Math.round(100 * iv.confidence)}% CI ${pct(iv.lower).slice(0, -1)}–${pct(iv.upper)}, ${thousands(iv.resamples)} bootstrap resamples over ${videos})`;
  const bounded = iv.lower >= iv.minimum - 1e-9;
  const lucky = iv.guessLevel !== null && iv.guessP > iv.guessLevel;
  const p = iv.guessP < 0.001 ? '<0.1%' : pct(iv.guessP);
  const guess = `a guess right on each video with probability ${pct(iv.chance)} does as well ${p} of the time`;
  let detail = `video balanced accuracy ${ci}: lower bound ${pct(iv.lower)} ${bounded ? '≥' : 'below'} ${pct(iv.minimum)} (${iv.classes} classes, chance ${pct(iv.chance)})`;
  if (bounded && lucky) detail += `, but ${guess} (more than ${pct(iv.guessLevel)}: too few videos of a class to tell)`;
  else if (bounded && iv.guessLevel !== null) detail += `; ${guess}`;
  return { rule: 'above-chance', passed: bounded && !lucky, detail };
}

/**
 * The promotion gate. Rules, in order:
 *
 * 1. `eval-set`: the label has a fixed evaluation set (`evalVersion` not null).
 * 2. `evaluated`: the candidate (and production, when there is one) was evaluated on that
 *    same version, so the numbers compare.
 * 3. `above-chance`, for every candidate, first model or not: the lower end of the
 *    bootstrap interval ({@link scoreInterval}: 95%, 2,000 resamples of the set's videos
 *    within their class) of the candidate's video-level balanced accuracy reaches
 *    {@link chanceMinimum} of `minLowerBound` (0.6 with 2 classes), and, when that minimum
 *    is above chance, a model guessing at chance does as well on videos like these at most
 *    (1 - confidence) / 2 = 2.5% of the time ({@link chanceTest}: the interval alone lets a
 *    lucky guess on a class of 1-3 videos through). A set whose videos are all of one class
 *    fails it. It applies with a production model too: a candidate that beats a production
 *    model at chance (one promoted before this rule) is still at chance.
 * 4. With a production model, `video-margin`: candidate's video-level balanced accuracy >=
 *    production's + `margin` (point estimates: both models are measured on the same videos).
 * 5. With a production model, `label-recall`: for each label with examples in the set, the
 *    candidate's frame-level recall >= production's - `recallTolerance` (frames, not videos:
 *    a set has a few videos per label, so a video-level recall moves in steps of 25-50% and
 *    a tolerance of a few percent would mean "no change at all").
 *
 * Every rule from 3 on is checked and every failing one is named in `reason`.
 * Deterministic (the bootstrap's seed is fixed): the same evaluations and configuration
 * give the same decision.
 *
 * @param candidate the candidate's evaluation on the current set version, or null.
 * @param production the production model's, or null when there is no production model (its
 *   `version` is given separately so a missing evaluation is reported).
 * @example
 *   // 12 videos, 6 of each class, half of each right: held back.
 *   promotionGate({ name: 'cartoon', candidateVersion: 1, candidate, productionVersion: null, production: null, evalVersion: 1,
 *                   config: { margin: 0.02, recallTolerance: 0.05, minLowerBound: 0.6 } }).reason;
 *   // 'held back: above-chance: video balanced accuracy 50.0% (95% CI 25.0–75.0%, 2,000 bootstrap resamples over 12 videos): lower bound 25.0% below 60.0% (2 classes, chance 50.0%)'
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
  const interval = input.candidate ? scoreInterval(input.candidate, config) : null;
  const decide = (): GateDecision => {
    const failed = rules.filter((r) => !r.passed);
    const promote = failed.length === 0;
    return {
      promote,
      rules,
      reason: promote ? `promoted: ${rules.map((r) => r.detail).join('; ')}` : `held back: ${failed.map((r) => `${r.rule}: ${r.detail}`).join('; ')}`,
      candidate: { name: input.name, version: input.candidateVersion, score: cScore, interval },
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
  rules.push(aboveChance(interval!));
  if (input.productionVersion === null) return decide();
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

/** S3 key of a batch predict run's predictions. */
export function batchPredictionsKey(workflowId: string): string {
  return `runs/${keySegment(workflowId)}/predict/predictions.json`;
}
