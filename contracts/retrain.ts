/**
 * Nightly retraining: the inputs and results of the retrain workflow (one label) and of
 * the fan-out workflow (every label with a published model), the plan the first
 * activity makes, and their ids and queries. Pure: safe in the workflow sandbox.
 */
import { defineQuery } from '@temporalio/workflow';
import { z } from 'zod';
import { NewCategoryInput } from './inputs';
import { keySegment } from './keys';
import type { GateDecision } from './lifecycle';
import type { EvaluateSummary, PublishedModel, Split, VideoFailure } from './manifests';
import type { NewCategoryResult } from './steps';
import { formatIssues } from './validate';

/** A label name, as new-category takes it (lower case; synonyms resolve through the taxonomy). */
export const LabelName = NewCategoryInput.shape.label;

/**
 * Pipeline parameters that override, for this retrain, those the label's last run used
 * (any field of the new-category input but `label`, e.g. `{"teacher": {"epochs": 20}}`).
 * Checked against the new-category schema: an unknown or out-of-range field is named.
 */
export const PipelineOverrides = z
  .record(z.string(), z.unknown())
  .default({})
  .superRefine((o, ctx) => {
    if ('label' in o) ctx.addIssue({ code: 'custom', message: 'overrides cannot change the label', path: ['label'] });
    const parsed = NewCategoryInput.strict().safeParse({ ...o, label: 'x' });
    if (!parsed.success) ctx.addIssue({ code: 'custom', message: formatIssues(parsed.error) });
  });
export type PipelineOverrides = z.infer<typeof PipelineOverrides>;

/**
 * The pipeline input of a retrain: the label's last run's input, under the overrides,
 * with the canonical label. An override that is an object merges into the last run's
 * object of the same field (`{"labeling": {"deadlineHours": 24}}` keeps the last run's
 * labelling mode; `{"teacher": {"epochs": 20}}` keeps its other teacher parameters);
 * any other value replaces it. A last run from before human labelling (its input has no
 * `labeling`) was labelled with weak labels: its retrains keep `{"mode": "weak"}`, so a
 * label nobody labelled by hand does not start waiting for people. Without a last run,
 * the new-category defaults (people label). The last run's `catalogGeneration` (what
 * named that run, `contracts/ids.ts`) is not carried over.
 *
 * @param last the `runs.input` of the label's latest new-category or retrain run, if any.
 * @returns zod's result: a last run's input that no longer validates is an error here.
 */
export function retrainInputOf(
  last: Record<string, unknown> | undefined,
  overrides: PipelineOverrides,
  label: string,
): ReturnType<typeof NewCategoryInput.safeParse> {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const base: Record<string, unknown> = last ? { ...last, ...('labeling' in last ? {} : { labeling: { mode: 'weak' } }) } : {};
  const merged: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides)) merged[k] = isObject(v) && isObject(base[k]) ? { ...base[k], ...v } : v;
  // The last run's catalog generation named that run (contracts/ids.ts); the retrain reads another catalog.
  delete merged['catalogGeneration'];
  return NewCategoryInput.safeParse({ ...merged, label });
}

/** Input of the retrain workflow (one label): `{"label": "bicycle"}` is enough. */
export const RetrainInput = z.object({
  /** The label to retrain; its canonical name (a synonym resolves) names its datasets and models. */
  label: LabelName,
  /** Retrain even when nothing arrived since the last dataset (new parameters, a changed backbone). */
  force: z.boolean().default(false),
  /** Pipeline parameters over those of the label's last run. */
  overrides: PipelineOverrides,
});
export type RetrainInput = z.infer<typeof RetrainInput>;
/** What a caller may pass. */
export type RetrainRequest = z.input<typeof RetrainInput>;

/** Input of the fan-out workflow: which labels, how many at once. */
export const RetrainAllInput = z.object({
  /** `all`: every label with a published model; or the labels to retrain. */
  labels: z.union([z.literal('all'), z.array(LabelName).min(1).max(10_000)]).default('all'),
  /** Retrain workflows (labels) running at once. */
  concurrency: z.number().int().positive().max(64).default(2),
  /** Passed to every label's retrain. */
  force: z.boolean().default(false),
  /** Passed to every label's retrain. */
  overrides: PipelineOverrides,
});
export type RetrainAllInput = z.infer<typeof RetrainAllInput>;
export type RetrainAllRequest = z.input<typeof RetrainAllInput>;

/**
 * What the retrain's first activity finds (`planRetrain`): what arrived since the label's
 * last dataset, and the pipeline parameters to use. Small: counts and one input object.
 */
export interface RetrainPlan {
  /** Canonical label (a synonym resolved through the taxonomy). */
  label: string;
  /** True when the retrain has work to do: new videos, changed labels, or `force`. */
  changed: boolean;
  /** Why it is (or is not) changed, in words, e.g. `3 new videos of "bicycle"`. */
  reasons: string[];
  /** Catalog videos not yet used by any run of the label (within the caps of the pipeline input). */
  newVideos: { positives: number; negatives: number; positivesLeftForLater: number; knownUnusable: number };
  /** The label's labelled frames now, and in the dataset its published model was trained on. */
  labels: {
    labelledFrames: number;
    fingerprint: string;
    baseline: { dataset: string; version: number; labelledFrames: number; fingerprint: string } | null;
  };
  /** Earlier runs of the label (new-category and retrain). */
  earlierRuns: number;
  /** Effective pipeline parameters: the schema's defaults < the label's last run < the overrides. */
  input: NewCategoryInput;
  /** Workflow id of the run whose parameters were taken, when there was one. */
  inputFrom: string | null;
}

/**
 * What the promotion gate decided for the retrain's candidate (`workflows/promotion.ts`):
 * `promoted` (now in production), `held-back` (the gate's `note` says which rule held it
 * back), or `not-evaluated` (histories recorded before the gate existed; nothing published).
 */
export interface PromotionDecision {
  decision: 'promoted' | 'held-back' | 'not-evaluated';
  /** One line: the gate's reason. */
  note: string;
  /** Every rule the gate checked, with the numbers compared. */
  gate?: GateDecision;
  /** The label's production version after the step. */
  production?: number | null;
}

/** Result of the retrain workflow: small, for the history, the CLI and the schedule's "last results". */
export interface RetrainResult {
  workflowId: string;
  label: string;
  /** `unchanged`: nothing arrived, nothing was run beyond the plan (a cheap no-op). */
  outcome: 'unchanged' | 'retrained';
  reasons: string[];
  newVideos: RetrainPlan['newVideos'];
  labelledFrames: number;
  /** What this run cost Temporal-side: its wall time (workflow clock) and the activities it scheduled. */
  cost: { wallMs: number; activities: number };
  /** The new-category-shaped details of a retrain that ran (absent when unchanged). */
  run?: Pick<NewCategoryResult, 'runPrefix' | 'steps' | 'failures' | 'dataset' | 'models' | 'evaluation'>;
  promotion?: PromotionDecision;
  /** S3 key of the run report (`runs/<id>/report.html`), when written. */
  reportKey?: string;
}

/** One label's line in the fan-out's result. */
export interface RetrainLabelOutcome {
  label: string;
  workflowId: string;
  outcome: 'retrained' | 'unchanged' | 'failed';
  reasons?: string[];
  models?: PublishedModel[];
  dataset?: { version: number; counts: Record<Split, Record<string, number>> };
  evaluation?: Pick<EvaluateSummary, 'validationFrames' | 'validationVideos'> & { teacherAccuracy: number | null; studentAccuracy: number | null };
  failures?: VideoFailure[];
  error?: { type: string; message: string };
}

/** Result of the fan-out workflow. */
export interface RetrainAllResult {
  workflowId: string;
  labels: RetrainLabelOutcome[];
  counts: { retrained: number; unchanged: number; failed: number };
}

/** State the fan-out carries through continue-as-new. */
export interface RetrainAllState {
  /** Labels to retrain (resolved once, on the first run). */
  labels: string[];
  cursor: number;
  done: RetrainLabelOutcome[];
}

/** Answer of {@link retrainAllProgressQuery}. */
export interface RetrainAllProgress {
  total: number;
  running: string[];
  done: Array<Pick<RetrainLabelOutcome, 'label' | 'outcome'>>;
}

/** Query: where the fan-out is (labels running and done). */
export const retrainAllProgressQuery = defineQuery<RetrainAllProgress>('retrainAllProgress');

/** Id of the retrain child of a fan-out for one label: `<parent id>/retrain/<label>`. */
export function retrainChildWorkflowId(parentId: string, label: string): string {
  return `${parentId}/retrain/${keySegment(label)}`;
}

/** Workflow types of the retraining, as the schedule and `runs list` name them. */
export const RETRAIN_WORKFLOW_TYPE = 'retrainWorkflow';
export const RETRAIN_ALL_WORKFLOW_TYPE = 'retrainAllWorkflow';
