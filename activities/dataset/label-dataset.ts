/**
 * The label's cumulative dataset (the retrain's dataset step): every frame labelled so far
 * by any run of the label, with its best label, split by video.
 */
import { type DatasetSummary, type LabelSource } from '../../contracts';
import { type DropReason } from '../../domain/labelled';

/** Summary of the label dataset step: the run dataset's summary, plus where its frames came from. */
export interface LabelDatasetSummary extends DatasetSummary {
  /** Runs of the label whose labelled frames are in it. */
  runs: number;
  /** Frames per label source (human, weak; a model's label is never one). */
  sources: Partial<Record<LabelSource, number>>;
  /** Fingerprint of the labelled frames it was built from (see `domain/labelled.ts`). */
  labelsFingerprint: string;
  /** Labelled frames left out: no embedding with the dataset's model. */
  withoutEmbedding: number;
  /**
   * Rows of the label's runs in `frame_labels` not read as its labels, by reason
   * (`keepLabelRow` in `domain/labelled.ts`: labels an earlier label step copied from other
   * labels' runs, model labels, ...). Absent when none.
   */
  leftOutLabels?: Partial<Record<DropReason, number>>;
}
