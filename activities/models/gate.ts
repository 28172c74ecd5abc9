/**
 * The promotion gate: the rules that decide whether a candidate model replaces
 * production (above chance on the fixed evaluation set by a bootstrap interval, better
 * than production by a margin, no label's recall lost beyond a tolerance). The
 * definitions it decides over (`GateConfig`, `GateRule`, `GateDecision`, `ScoreInterval`)
 * are in `contracts/lifecycle.ts`; the registry (`registry.ts`) runs it on promotion.
 */
import {
  balancedAccuracy,
  balancedAccuracyInterval,
  BOOTSTRAP_DEFAULTS,
  chanceTest,
  InvalidInputError,
  outcomesFromConfusion,
  type EvalSetMetrics,
  type GateConfig,
  type GateDecision,
  type GateRule,
  type ScoreInterval,
} from '../../contracts';

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
    return {
      rule: 'above-chance',
      passed: false,
      detail: `the ${videos} of the evaluation set are all of one class: no chance level to beat (grow the set with videos of every class)`,
    };
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
    rules.push({
      rule: 'eval-set',
      passed: false,
      detail: `label "${input.name}" has no fixed evaluation set (reelset evalset grow ${input.name} --videos ...)`,
    });
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
