/**
 * The teacher's and the student's features come from the configured backbones: a dataset
 * embedded by the embed step's backbone (the student's input, `ds.embedding`), then the
 * train step's teacher features for a teacher configured with two other backbones, in that
 * order, each row the backbone's own pooled features of that frame. Real S3, real frames
 * of a shared video, ONNX Runtime on the embedding thread.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { BackboneName, DatasetManifest } from '../../contracts';
import { computeTeacherFeatures, teacherDim, teacherLookup, teacherParts } from '../../activities/training/data';
import { backboneOptionsFromConfig } from '../../domain/backbone/model';
import { embedPacks } from '../../domain/backbone/packs';
import { EmbeddingThread } from '../../domain/backbone/thread';
import { gatherFeatures } from '../../lib/vectors';
import { deletePrefix, requireServices, SHARED_VIDEOS, uniqueSuffix, type Services } from '../helpers/services';

jest.setTimeout(300_000);

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const prefix = `test-teacher-features-${uniqueSuffix()}/`;
let svc: Services;
let thread: EmbeddingThread;

beforeAll(async () => {
  svc = await requireServices();
  thread = new EmbeddingThread(backboneOptionsFromConfig(svc.config));
});
afterAll(async () => {
  await thread?.close();
  if (svc) await deletePrefix(svc.store, prefix);
  await svc?.close();
});

/** Three frames of a shared video (Megamind.avi, 11 s: at 1, 5 and 9 s), as JPEGs in S3. */
async function frames(): Promise<Array<{ key: string; bytes: Buffer; sha256: string }>> {
  const video = path.join(SHARED_VIDEOS, 'Megamind.avi');
  const out = [];
  for (const t of [1, 5, 9]) {
    const bytes = execFileSync('ffmpeg', [
      '-v',
      'error',
      '-ss',
      String(t),
      '-i',
      video,
      '-frames:v',
      '1',
      '-vf',
      'scale=-2:256',
      '-f',
      'image2',
      '-c:v',
      'mjpeg',
      'pipe:1',
    ]);
    const key = `${prefix}frames/${t}.jpg`;
    await svc.store.put(key, bytes, 'image/jpeg');
    out.push({ key, bytes, sha256: sha(bytes) });
  }
  return out;
}

const cosine = (a: Float32Array, b: Float32Array) => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
};

test('the student reads the embed step backbone; the teacher each configured backbone, in order', async () => {
  const f = await frames();
  const videoId = `tf-${uniqueSuffix()}`;
  const request = { videoId, videoSha256: sha(videoId), frames: f.map(({ key, sha256 }) => ({ key, sha256 })) };
  // The embed step, with the configured embedding backbone.
  const embedBackbone = svc.config.REELSET_EMBED_BACKBONE;
  const packs = await embedPacks(svc.store, thread, embedBackbone, [request]);
  expect(packs.model.name).toBe(embedBackbone);
  const pack = packs.videos[0]!;
  const ds: DatasetManifest = {
    name: videoId,
    version: 1,
    workflowId: videoId,
    createdAt: new Date().toISOString(),
    labels: ['a', 'other'],
    taxonomy: {},
    embedding: packs.model,
    frames: f.map((x, row) => ({ key: x.key, videoId, label: row === 0 ? 'a' : 'other', split: 'train' as const, vector: { key: pack.vectorsKey, row } })),
    unlabeled: [],
    videos: { train: [videoId], validation: [] },
    counts: { train: { a: 1, other: 2 }, validation: {} },
    warnings: [],
  };
  // The student's input: the dataset's own embedding rows, of the embed backbone.
  const direct = async (b: BackboneName) => {
    const r = await thread.embed(
      f.map((x) => new Uint8Array(x.bytes)),
      8,
      b,
    );
    const dim = r.vectors.length / f.length;
    return { dim, raw: r.vectors.map((v, i) => v * r.norms[Math.floor(i / dim)]!) };
  };
  const student = await gatherFeatures(
    svc.store,
    ds.frames.map((x) => x.vector),
    ds.embedding.dim,
  );
  const embedDirect = await direct(embedBackbone);
  expect(student.length).toBe(3 * embedDirect.dim);
  expect(cosine(student, embedDirect.raw)).toBeGreaterThan(0.9999);

  // A teacher configured with Lite2 then Lite1 (not the default order, not the embed backbone).
  const configured: BackboneName[] = ['efficientnet_lite2', 'efficientnet_lite1'];
  const tf = await computeTeacherFeatures(svc.store, thread, ds, configured, () => undefined);
  expect(teacherParts(tf.features).map((p) => p.model.name)).toEqual(configured);
  expect(teacherDim(tf.features)).toBe(2560);
  expect(tf.computed).toBe(6);
  const lookup = await teacherLookup(svc.store, tf.features, ds);
  const rows = await lookup.rowsOf(ds.frames);
  expect(rows.length).toBe(3 * 2560);
  const [lite2, lite1] = [await direct('efficientnet_lite2'), await direct('efficientnet_lite1')];
  for (let i = 0; i < 3; i++) {
    const row = rows.subarray(i * 2560, (i + 1) * 2560);
    expect(cosine(row.subarray(0, 1280), lite2.raw.subarray(i * 1280, (i + 1) * 1280))).toBeGreaterThan(0.9999);
    expect(cosine(row.subarray(1280), lite1.raw.subarray(i * 1280, (i + 1) * 1280))).toBeGreaterThan(0.9999);
    // And not the other way round: each half is its own backbone's.
    expect(cosine(row.subarray(0, 1280), lite1.raw.subarray(i * 1280, (i + 1) * 1280))).toBeLessThan(0.99);
  }
  // A second teacher over the same frames reuses the packs (cached by content and backbone).
  const again = await computeTeacherFeatures(svc.store, thread, ds, configured, () => undefined);
  expect({ computed: again.computed, cached: again.cached }).toEqual({ computed: 0, cached: 6 });
});
