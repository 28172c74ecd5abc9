/**
 * The pipeline's steps, and the result of a new-category run. Pure: safe in the
 * workflow sandbox.
 */
import type { EvaluateSummary, PublishedModel, Split, VideoFailure } from './manifests';

/** The new-category pipeline's steps, in order; also values of the `ReelsetStage` search attribute. */
export const STEPS = ['search', 'extract', 'embed', 'dedupe', 'label', 'dataset', 'train', 'distill', 'evaluate', 'publish'] as const;
export type Step = (typeof STEPS)[number];

/** Where a run is: a step, or its end. */
export type Stage = Step | 'done' | 'failed';

/** One step's line in a run's result: its duration and its small summary. */
export interface StepReport {
  durationMs: number;
  reused: boolean;
  manifestKey: string;
  summary: Record<string, unknown>;
}

/** Result of the new-category workflow: small, for the history and the CLI. */
export interface NewCategoryResult {
  workflowId: string;
  label: string;
  /** `runs/<workflowId>` in the bucket: every step's manifest is under it. */
  runPrefix: string;
  steps: Partial<Record<Step, StepReport>>;
  /** Videos whose extraction failed (the run went on without them). */
  failures: VideoFailure[];
  dataset: { name: string; version: number; datasetKey: string; counts: Record<Split, Record<string, number>>; warnings: string[] };
  models: PublishedModel[];
  evaluation: EvaluateSummary;
}

/** State a new-category run carries through continue-as-new during the extraction fan-out. */
export interface ContinueState {
  /** Index of the next video to extract. */
  cursor: number;
  failures: VideoFailure[];
  extracted: number;
  /** Videos whose frames an earlier run had made (their child returned the existing manifest). */
  reusedVideos?: number;
  /** When the extract step started (workflow time, epoch ms), kept across continue-as-new for its duration. */
  startedAtMs?: number;
}
