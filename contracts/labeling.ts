/**
 * Human labelling in Label Studio: the `labeling` input of a new-category run, the
 * labelling child workflow's input, state, signals and queries, and the small results
 * its activities return. Pure: safe in the workflow sandbox; the gateway and the CLI
 * import it by value.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { z } from 'zod';
import type { LabelSummary, StepResult } from './manifests';

/**
 * Who labels the dedupe step's representatives:
 * - `human`: people in Label Studio; the run waits for them (up to a deadline);
 * - `weak`: the catalog search's labels (positive videos: the label; sampled negatives:
 *   `other`), nobody is asked and nothing waits.
 */
export const LabelingMode = z.enum(['human', 'weak']);
export type LabelingMode = z.infer<typeof LabelingMode>;

/**
 * What a run does when its labelling deadline passes with frames not done:
 * - `proceed`: build the dataset from what people labelled plus the weak labels of the
 *   rest, each frame marked with its source (`human` or `weak`);
 * - `fail`: the run fails with a `LabelingDeadlineError` (people's labels are kept in
 *   Postgres; a later run of the label inherits them).
 */
export const DeadlinePolicy = z.enum(['proceed', 'fail']);
export type DeadlinePolicy = z.infer<typeof DeadlinePolicy>;

/** The `labeling` field of the new-category input: `{}` takes every default. */
export const LabelingOptions = z.object({
  /** `human` (default: the product promises human-checked datasets) or `weak`. */
  mode: LabelingMode.default('human'),
  /** Hours the run waits for people, from the moment its tasks are sent (fractions allowed). */
  deadlineHours: z
    .number()
    .positive()
    .max(24 * 90)
    .default(72),
  /** What happens at the deadline: `proceed` (people's labels + weak labels for the rest) or `fail`. */
  onDeadline: DeadlinePolicy.default('proceed'),
  /** Seconds between two reconciliations with Label Studio's API (it drops webhooks it cannot deliver). */
  reconcileIntervalS: z.number().min(1).max(3600).default(60),
  /** Distinct people who label each frame of a validation video (1 turns double annotation off). */
  validationAnnotators: z.number().int().min(1).max(5).default(2),
  /** Syncs after which the waiting workflow continues as new (keeps its history bounded). */
  continueAfterSyncs: z.number().int().min(2).max(10_000).default(200),
});
export type LabelingOptions = z.infer<typeof LabelingOptions>;

/** Input of the labelling child workflow of a run (its id: {@link labelingChildWorkflowId}). */
export interface LabelingInput {
  /** The new-category run's workflow id: its manifests are under `runs/<id>/`. */
  runWorkflowId: string;
  label: string;
  options: LabelingOptions;
  /** Fraction of each label group's videos held out for validation (their frames get `validationAnnotators` people). */
  validationFraction: number;
  seed: number;
  gpuTaskQueue: string;
  heartbeatTimeoutS: number;
}

/** Id of the labelling child of a run: `<run id>/label`. */
export function labelingChildWorkflowId(runWorkflowId: string): string {
  return `${runWorkflowId}/label`;
}

// ----------------------------------------------------------- signals, queries ---

/**
 * What the gateway tells a waiting run about Label Studio: an action (`ANNOTATION_CREATED`,
 * `ANNOTATION_UPDATED`, `ANNOTATIONS_DELETED`, or whatever arrived) and the ids it named.
 * `full` asks for a whole reconciliation (an event without payload names nothing).
 * Small: ids only, never annotation contents.
 */
export interface LabelingEvent {
  action: string;
  /** Annotations created or updated (to fetch and mirror). */
  annotationIds: number[];
  /** Annotations deleted (to remove). */
  deletedAnnotationIds: number[];
  full: boolean;
}

/** Signal: Label Studio changed something (sent by the labelling gateway). */
export const labelingEventSignal = defineSignal<[LabelingEvent]>('labelingEvent');

/** Signal: stop waiting now and finish with what people labelled (weak labels for the rest, marked as such). */
export const finishLabelingSignal = defineSignal<[{ reason?: string }]>('finishLabeling');

/** Where the people's work stands, from the last sync. */
export interface LabelingCounts {
  /** Tasks the run waits for. */
  tasks: number;
  /** Tasks with as many distinct people as they need (skipped ones included). */
  done: number;
  /** Frames with a label from people (agreed, or a single person where one is needed). */
  labelled: number;
  /** Annotations mirrored (every person, every task of the run). */
  annotations: number;
  /** Validation frames: tasks, done, and agreement between the first two people (see `Agreement`). */
  validation: { tasks: number; done: number } & Agreement;
}

/** Agreement between the first two people on frames both labelled (Cohen 1960). */
export interface Agreement {
  /** Frames with two labels. */
  pairs: number;
  /** Fraction of pairs with the same label; null without pairs. */
  agreement: number | null;
  /** Cohen's kappa over the pairs (first vs second person); null when undefined (no pairs, or a single category). */
  kappa: number | null;
  /** Pairs that differ. */
  disagreements: number;
}

/** Answer of {@link labelingProgressQuery}. */
export interface LabelingProgress extends LabelingCounts {
  state: 'preparing' | 'waiting' | 'finishing' | 'done' | 'failed';
  label: string;
  projectId: number | null;
  /** The Label Studio page where people label this run's frames. */
  projectUrl: string | null;
  /** ISO 8601 deadline; null until the tasks are sent. */
  deadline: string | null;
  /** Seconds to the deadline (0 once passed); null until the tasks are sent. */
  timeLeftS: number | null;
  onDeadline: DeadlinePolicy;
  /** ISO time of the last successful sync with Label Studio. */
  lastSyncAt: string | null;
  /** Syncs that failed (Label Studio unreachable...); the wait goes on, the next sync catches up. */
  syncErrors: number;
  lastSyncError: string | null;
  /** Why the wait ended: every task done, the deadline, or the finish signal. */
  finishedBy: 'complete' | 'deadline' | 'early' | null;
}

/** Query: labelled / total, agreement, time left. Use as `handle.query(labelingProgressQuery)` on `<run>/label`. */
export const labelingProgressQuery = defineQuery<LabelingProgress>('labelingProgress');

// ----------------------------------------------------------- activity results ---

/** What `predictFrames` found and wrote. */
export interface PredictionsSummary {
  /** The published model used; null when the label has none (or none on this embedding). */
  model: { name: string; version: number; role: string } | null;
  /** Frames predicted. */
  frames: number;
  /** `runs/<run>/label/predictions.json`, or null when nothing was written. */
  predictionsKey: string | null;
  note?: string;
}

/** The predictions file: per frame key, the model's label, its probability and the margin to the runner-up. */
export interface PredictionsFile {
  model: { name: string; version: number; role: string; artifactPrefix: string };
  labels: string[];
  frames: Record<string, { label: string; score: number; margin: number }>;
}

/** What `prepareLabeling` did: the project, the tasks, or that the label step had already finished. */
export interface PrepareLabelingResult {
  projectId: number;
  projectUrl: string;
  /** Tasks the run waits for (new and reused). */
  tasks: number;
  /** Tasks imported now. */
  created: number;
  /** Tasks an earlier run made for the same frame, not done yet: reused, not duplicated. */
  reused: number;
  /** Representatives a person already labelled in an earlier run: not sent again. */
  inherited: number;
  validationTasks: number;
  /** ISO 8601 deadline. */
  deadline: string;
  model: { name: string; version: number } | null;
  /** Set when the run's label step had already finished (a retried or reset run): its result, nothing else was done. */
  finished?: StepResult<LabelSummary>;
}
