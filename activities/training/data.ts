/**
 * The training steps' data: the dataset, the teacher's backbone features of its frames
 * (computed on the GPU queue, cached by content), the student's features, frames as
 * images, and where models and their `artifact.json` go.
 */
import {
  MissingArtifactError,
  type BackboneName,
  type BackbonePacks,
  type DatasetManifest,
  type DatasetStepManifest,
  type TeacherFeatures,
  type TrainStepManifest,
  type VectorIndex,
  type VectorRef,
} from '../../contracts';
import type { PackProgress, PackRequest } from '../../domain/backbone/packs';
import { embedPacks } from '../../domain/backbone/packs';
import type { EmbeddingThread } from '../../domain/backbone/thread';
import type { ActivityDeps } from '../../lib/deps';
import { readStepManifest } from '../../lib/runs';
import type { ObjectStore } from '../../lib/s3';
import { gatherFeatures, indexKeyOf } from '../../lib/vectors';
import type { SerializedModel } from './serialize';

/** Where a model's files are: `<prefix>/model.json` and `<prefix>/weights.bin`. */
export async function saveModel(store: ObjectStore, prefix: string, model: SerializedModel): Promise<void> {
  await store.put(`${prefix}/weights.bin`, model.weights);
  await store.put(`${prefix}/model.json`, model.modelJson, 'application/json');
}

/** Read a model saved by {@link saveModel}, or undefined when absent. */
export async function loadModel(store: ObjectStore, prefix: string): Promise<SerializedModel | undefined> {
  const [json, weights] = await Promise.all([store.get(`${prefix}/model.json`), store.get(`${prefix}/weights.bin`)]);
  return json && weights ? { modelJson: json.toString('utf8'), weights } : undefined;
}

/** Read a model the pipeline must have written, naming the step that writes it when it is not there. */
export async function requireModel(store: ObjectStore, prefix: string, writtenBy: string): Promise<SerializedModel> {
  const m = await loadModel(store, prefix);
  if (!m) throw new MissingArtifactError(store.uri(`${prefix}/model.json`), `model written by the ${writtenBy} step (has it run?)`);
  return m;
}

/** The run's dataset manifest (through the dataset step's manifest). */
export async function loadDataset(deps: ActivityDeps, workflowId: string): Promise<DatasetManifest> {
  const step = await readStepManifest<DatasetStepManifest>(deps.store, workflowId, 'dataset');
  const ds = await deps.store.getJson<DatasetManifest>(step.summary.datasetKey);
  if (!ds) throw new MissingArtifactError(deps.store.uri(step.summary.datasetKey), 'dataset manifest');
  return ds;
}

/** Every frame of a dataset (labelled and unlabelled) with the embedding row (embed step's backbone) it points at. */
function datasetRows(ds: DatasetManifest): Array<{ key: string; videoId: string; vector: VectorRef }> {
  return [...ds.frames, ...ds.unlabeled];
}

/**
 * What to embed with the teacher's backbones: the dataset's frames, one request per
 * embedding pack they point at (frames in pack order), with each frame's content hash
 * and its video's from the pack's index. So the teacher's packs are keyed by content
 * like the embed step's, and a later dataset over the same frames reuses them.
 *
 * @throws MissingArtifactError when a pack's index is missing.
 */
export async function teacherRequests(store: ObjectStore, ds: DatasetManifest): Promise<PackRequest[]> {
  const byPack = new Map<string, { videoId: string; rows: Map<number, string> }>();
  for (const f of datasetRows(ds)) {
    let e = byPack.get(f.vector.key);
    if (!e) byPack.set(f.vector.key, (e = { videoId: f.videoId, rows: new Map() }));
    e.rows.set(f.vector.row, f.key);
  }
  const requests: PackRequest[] = [];
  for (const [packKey, { videoId, rows }] of [...byPack.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const idx = await store.getJson<VectorIndex>(indexKeyOf(packKey));
    if (!idx) throw new MissingArtifactError(store.uri(indexKeyOf(packKey)), `vector index of video ${videoId} (written by the embed step)`);
    const videoSha256 = idx.videoSha256 ?? /^frames\/([0-9a-f]{64})\//.exec(idx.frameKeys[0] ?? '')?.[1];
    if (!videoSha256) throw new MissingArtifactError(store.uri(indexKeyOf(packKey)), 'video sha256 of a vector index');
    const frames = [...rows.entries()].sort(([a], [b]) => a - b).map(([row, key]) => ({ key, sha256: idx.frameSha256[row]! }));
    requests.push({ videoId, videoSha256, frames });
  }
  return requests;
}

/**
 * The teacher's features of every dataset frame: each of its backbones on the embedding
 * thread (ONNX Runtime, CUDA when installed), packed per video and backbone and cached by
 * content (a backbone that is also the embed step's reuses the embed step's packs).
 *
 * @returns the packs in `backbones` order, as a {@link TeacherFeatures}, and what was computed.
 */
export async function computeTeacherFeatures(
  store: ObjectStore,
  thread: EmbeddingThread,
  ds: DatasetManifest,
  backbones: BackboneName[],
  onProgress: (p: PackProgress & { backbone: BackboneName }) => void,
): Promise<{ features: TeacherFeatures; backend: string; computed: number; cached: number }> {
  const requests = await teacherRequests(store, ds);
  const parts: BackbonePacks[] = [];
  let backend = '';
  let computed = 0;
  let cached = 0;
  for (const backbone of backbones) {
    const r = await embedPacks(store, thread, backbone, requests, { batchSize: 8, onProgress: (p) => onProgress({ ...p, backbone }) });
    parts.push({ model: r.model, videos: r.videos });
    backend = r.backend;
    computed += r.computed;
    cached += r.cached;
  }
  return { features: { ...parts[0]!, backbones: parts }, backend, computed, cached };
}

/** The packs of every backbone of a teacher's features (older manifests: the one). */
export function teacherParts(tf: TeacherFeatures): BackbonePacks[] {
  return tf.backbones?.length ? tf.backbones : [{ model: tf.model, videos: tf.videos }];
}

/** Width of the teacher's input: the backbones' dimensions summed. */
export function teacherDim(tf: TeacherFeatures): number {
  return teacherParts(tf).reduce((n, p) => n + p.model.dim, 0);
}

/**
 * The train step's teacher feature rows, by frame key and by the content hash (sha256 of the
 * encoded frame) each row was computed from. The packs are cached by content, so a pack made
 * for an earlier dataset lists that dataset's keys: a frame pixel-identical to one of them,
 * or the same row under another key, is found by content.
 */
export interface TeacherRows {
  /** Frame key (S3 key of the JPEG) -> its row in a teacher pack. */
  byKey: Map<string, VectorRef>;
  /** sha256 of the encoded frame a row was computed from -> that row. */
  bySha256: Map<string, VectorRef>;
}

/**
 * Read the teacher packs' indexes into {@link TeacherRows}.
 *
 * @throws MissingArtifactError when a pack's index is missing.
 */
export async function teacherRefs(store: ObjectStore, tf: BackbonePacks): Promise<TeacherRows> {
  const rows: TeacherRows = { byKey: new Map(), bySha256: new Map() };
  for (const v of tf.videos) {
    const idx = await store.getJson<VectorIndex>(v.indexKey);
    if (!idx) throw new MissingArtifactError(store.uri(v.indexKey), `teacher features of video ${v.videoId} (written by the train step)`);
    idx.frameKeys.forEach((k, row) => rows.byKey.set(k, { key: v.vectorsKey, row }));
    idx.frameSha256.forEach((sha, row) => rows.bySha256.set(sha, { key: v.vectorsKey, row }));
  }
  return rows;
}

/**
 * The content hash of every embedding row the dataset's frames point at, from the embed
 * step's pack indexes: the content the teacher's row for such a frame was computed from
 * ({@link teacherRequests} asks for exactly these hashes).
 *
 * @returns `"<pack key>#<row>"` -> sha256.
 * @throws MissingArtifactError when an embedding pack's index is missing.
 */
export async function embeddingContent(store: ObjectStore, ds: DatasetManifest): Promise<Map<string, string>> {
  const content = new Map<string, string>();
  for (const packKey of new Set(datasetRows(ds).map((f) => f.vector.key))) {
    const idx = await store.getJson<VectorIndex>(indexKeyOf(packKey));
    if (!idx) throw new MissingArtifactError(store.uri(indexKeyOf(packKey)), 'vector index of a dataset frame (written by the embed step)');
    idx.frameSha256.forEach((sha, row) => content.set(`${packKey}#${row}`, sha));
  }
  return content;
}

/**
 * The teacher feature row of a dataset frame: by its key, else by the content of its
 * embedding row. Pixel-identical frames share one embedding row, the teacher's packs hold one
 * row per embedding row under one key, and a cached pack lists the keys of the dataset it
 * was first made for.
 *
 * @param rows from {@link teacherRefs}.
 * @param content from {@link embeddingContent}.
 * @returns a lookup by frame (`key` and its embedding `vector` reference).
 * @throws MissingArtifactError (from the lookup) naming a frame found neither way.
 */
export function teacherRefOf(rows: TeacherRows, content: Map<string, string>): (frame: { key: string; vector: VectorRef }) => VectorRef {
  return (f) => {
    const sha = content.get(`${f.vector.key}#${f.vector.row}`);
    const r = rows.byKey.get(f.key) ?? (sha === undefined ? undefined : rows.bySha256.get(sha));
    if (!r) throw new MissingArtifactError(f.key, 'teacher features of a dataset frame (not in the train step packs, by key or by content)');
    return r;
  };
}

/** A dataset frame: its key and the embedding row it points at. */
export type FrameRef = { key: string; vector: VectorRef };

/**
 * The teacher's input rows for dataset frames: each backbone's row ({@link teacherRefOf})
 * gathered and concatenated, `frames.length * teacherDim` floats (raw features).
 */
export type TeacherRowsOf = (frames: FrameRef[]) => Promise<Float32Array>;

/**
 * The teacher feature lookup for a dataset: {@link teacherRefOf} over each backbone's packs
 * of `tf`, and a gatherer of concatenated rows.
 * @throws MissingArtifactError when a teacher or embedding pack's index is missing (or, from
 *   the gatherer, a frame found in no pack).
 */
export async function teacherLookup(store: ObjectStore, tf: TeacherFeatures, ds: DatasetManifest): Promise<{ dim: number; rowsOf: TeacherRowsOf }> {
  const content = await embeddingContent(store, ds);
  const parts = await Promise.all(teacherParts(tf).map(async (p) => ({ dim: p.model.dim, refOf: teacherRefOf(await teacherRefs(store, p), content) })));
  const dim = parts.reduce((n, p) => n + p.dim, 0);
  return {
    dim,
    async rowsOf(frames) {
      const out = new Float32Array(frames.length * dim);
      let off = 0;
      for (const p of parts) {
        const rows = await gatherFeatures(store, frames.map(p.refOf), p.dim);
        for (let i = 0; i < frames.length; i++) out.set(rows.subarray(i * p.dim, (i + 1) * p.dim), i * dim + off);
        off += p.dim;
      }
      return out;
    },
  };
}

/**
 * The teacher features the train step left, and their lookup.
 * @throws MissingArtifactError when the train step has not run or predates teacher features.
 */
export async function readTeacherFeatures(
  store: ObjectStore,
  workflowId: string,
  ds: DatasetManifest,
): Promise<{ features: TeacherFeatures; dim: number; rowsOf: TeacherRowsOf }> {
  const train = await readStepManifest<TrainStepManifest>(store, workflowId, 'train');
  if (!train.teacherFeatures) throw new MissingArtifactError(store.uri(train.summary.modelPrefix), 'teacher features (the train step predates them: rerun it)');
  return { features: train.teacherFeatures, ...(await teacherLookup(store, train.teacherFeatures, ds)) };
}

/**
 * Fetch frames from S3, a few at a time.
 * @throws MissingArtifactError naming a frame that is not there.
 */
export async function fetchFrames(store: ObjectStore, keys: string[], concurrency = 8): Promise<Buffer[]> {
  const out = new Array<Buffer>(keys.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, keys.length) }, async () => {
      while (next < keys.length) {
        const i = next++;
        const b = await store.get(keys[i]!);
        if (!b) throw new MissingArtifactError(store.uri(keys[i]!), 'frame (listed in the dataset manifest)');
        out[i] = b;
      }
    }),
  );
  return out;
}
