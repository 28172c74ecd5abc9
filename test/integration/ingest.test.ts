import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import type { Pool } from 'pg';
import { readCatalogFile, readTaxonomyFile, type ResolvedEntry } from '../../activities/catalog/catalog-file';
import { ingestCatalog, upsertTaxonomy } from '../../activities/catalog/ingest';
import { videoKey } from '../../contracts';
import { sha256File } from '../../lib/hash';
import { loadTaxonomy } from '../../domain/taxonomy';
import { resolveLabel, searchCatalog } from '../../domain/catalog-search';
import type { ObjectStore } from '../../lib/s3';
import { deleteKey, requireServices, SHARED_CATALOG, uniqueSuffix, type Services } from '../helpers/services';

jest.setTimeout(60_000);

const TAXONOMY = path.resolve(__dirname, '../../infra/taxonomy.json');
const logger = pino({ level: 'silent' });

let svc: Services;
let pool: Pool;
let store: ObjectStore;
let catalog: ResolvedEntry[];
let tmp: string;
const suffix = uniqueSuffix();
const cleanupIds: string[] = [];
const cleanupKeys: string[] = [];
const cleanupLabels: string[] = [];

beforeAll(async () => {
  svc = await requireServices();
  pool = svc.pool;
  store = svc.store;
  catalog = await readCatalogFile(SHARED_CATALOG);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-ingest-test-'));
  await upsertTaxonomy(pool, await readTaxonomyFile(TAXONOMY));
});

afterAll(async () => {
  if (svc) {
    if (cleanupIds.length) await pool.query('DELETE FROM videos WHERE id = ANY($1)', [cleanupIds]).catch(() => undefined);
    if (cleanupLabels.length) await pool.query('DELETE FROM labels WHERE name = ANY($1)', [cleanupLabels]).catch(() => undefined);
    for (const k of cleanupKeys) await deleteKey(store, k).catch(() => undefined);
  }
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  await svc?.close();
});

function entry(id: string): ResolvedEntry {
  const e = catalog.find((x) => x.id === id);
  if (!e) throw new Error(`no entry ${id} in ${SHARED_CATALOG}`);
  return e;
}

describe('database schema', () => {
  it('the migrations are applied: every table exists', async () => {
    const res = await pool.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`);
    const tables = res.rows.map((r) => r.table_name);
    for (const t of ['labels', 'videos', 'video_labels', 'runs', 'run_steps', 'frames', 'frame_labels', 'datasets', 'models', 'pgmigrations'])
      expect(tables).toContain(t);
    const applied = await pool.query<{ name: string }>('SELECT name FROM pgmigrations');
    expect(applied.rows.map((r) => r.name)).toContain('1700000000000_initial-schema');
  });
});

describe('upsertTaxonomy', () => {
  it('stores parents and synonyms; is idempotent', async () => {
    const taxonomy = await readTaxonomyFile(TAXONOMY);
    expect(await upsertTaxonomy(pool, taxonomy)).toBe(taxonomy.length);
    const row = await pool.query<{ parent: string; synonyms: string[] }>('SELECT parent, synonyms FROM labels WHERE name = $1', ['bicycle']);
    expect(row.rows[0]!.parent).toBe('vehicle');
    expect(row.rows[0]!.synonyms).toEqual(expect.arrayContaining(['bike', 'cyclist']));
    const cockatoo = await pool.query<{ parent: string }>('SELECT parent FROM labels WHERE name = $1', ['cockatoo']);
    expect(cockatoo.rows[0]!.parent).toBe('bird');
  });

  it('stores declared exclusions, replaces them when the file changes, and makes labels they name', async () => {
    const [a, b, c] = [`excl-a-${suffix}`, `excl-b-${suffix}`, `excl-c-${suffix}`];
    cleanupLabels.push(a, b, c);
    const excludes = async (name: string) =>
      (await pool.query<{ excludes: string[] }>('SELECT excludes FROM labels WHERE name = $1', [name])).rows[0]?.excludes;
    await upsertTaxonomy(pool, [{ name: a, parent: null, synonyms: [], excludes: [c, b] }]);
    expect(await excludes(a)).toEqual([b, c].sort());
    expect(await excludes(b)).toEqual([]); // made bare; the relation is symmetric when read (domain/taxonomy.ts)
    await upsertTaxonomy(pool, [{ name: a, parent: null, synonyms: [], excludes: [b] }]);
    expect(await excludes(a)).toEqual([b]);
    const t = await loadTaxonomy(pool);
    expect(t.excludes(b, a)).toBe(true);
    expect(t.excludes(a, c)).toBe(false);
  });
});

describe('ingestCatalog', () => {
  const ids = ['g1', 'DualDiscs', 'traitsui-test'];

  it('re-ingesting real catalog entries is a no-op: all unchanged, nothing uploaded', async () => {
    const entries = ids.map(entry);
    const first = await ingestCatalog({ pool, store, logger }, entries);
    expect(first.failed).toEqual([]);
    expect([...first.inserted, ...first.updated, ...first.unchanged].sort()).toEqual([...ids].sort());

    const second = await ingestCatalog({ pool, store, logger }, entries);
    expect(second.failed).toEqual([]);
    expect(second.unchanged.sort()).toEqual([...ids].sort());
    expect(second.inserted).toEqual([]);
    expect(second.updated).toEqual([]);
    expect(second.uploaded).toBe(0);

    for (const e of entries) {
      const key = videoKey(e.sha256!, e.file);
      expect(key).toBe(`videos/${e.sha256}${path.extname(e.file).toLowerCase()}`);
      expect(await store.head(key)).toBe((await fs.stat(e.absPath)).size);
      const row = await pool.query<{ sha256: string; s3_key: string; bytes: string; width: number; height: number }>(
        'SELECT sha256, s3_key, bytes, width, height FROM videos WHERE id = $1',
        [e.id],
      );
      expect(row.rows[0]).toMatchObject({ sha256: e.sha256, s3_key: key, width: e.video!.width, height: e.video!.height });
      expect(Number(row.rows[0]!.bytes)).toBe(e.bytes);
      const labels = await pool.query<{ label: string }>(`SELECT label FROM video_labels WHERE video_id = $1 AND source = 'catalog' ORDER BY label`, [e.id]);
      expect(labels.rows.map((r) => r.label)).toEqual([...e.labels].sort());
    }
  });

  it('a missing file and a sha256 mismatch are reported in failed; good entries still ingest', async () => {
    const missingId = `test-missing-${suffix}`;
    const mismatchId = `test-mismatch-${suffix}`;
    const missingPath = path.join(tmp, 'does-not-exist.mp4');
    const g1 = entry('g1');
    const report = await ingestCatalog({ pool, store, logger }, [
      { ...g1, id: missingId, file: 'does-not-exist.mp4', absPath: missingPath, sha256: undefined },
      entry('DualDiscs'),
      { ...g1, id: mismatchId, sha256: 'f'.repeat(64) },
      g1,
    ]);
    expect(report.failed).toHaveLength(2);
    const missing = report.failed.find((f) => f.id === missingId)!;
    expect(missing.file).toBe(missingPath);
    expect(missing.reason).toContain('file not found');
    expect(missing.reason).toContain(missingPath);
    const mismatch = report.failed.find((f) => f.id === mismatchId)!;
    expect(mismatch.reason).toContain('sha256 mismatch');
    expect(mismatch.reason).toContain(g1.absPath);
    expect([...report.inserted, ...report.updated, ...report.unchanged].sort()).toEqual(['DualDiscs', 'g1']);
    const rows = await pool.query('SELECT id FROM videos WHERE id = ANY($1)', [[missingId, mismatchId]]);
    expect(rows.rowCount).toBe(0);
  });

  it('the same content under a new id is rejected and inserts nothing', async () => {
    const newId = `test-dup-${suffix}`;
    const report = await ingestCatalog({ pool, store, logger }, [{ ...entry('g1'), id: newId }]);
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]!.reason).toContain('same content already ingested');
    expect(report.failed[0]!.reason).toContain('"g1"');
    expect(report.uploaded).toBe(0);
    expect((await pool.query('SELECT 1 FROM videos WHERE id = $1', [newId])).rowCount).toBe(0);
  });

  it('a new video is inserted and uploaded, probed when the entry has no metadata, and updated on a label change', async () => {
    // Unique content: a tiny generated clip with the run's suffix in its metadata.
    const file = path.join(tmp, `new-${suffix}.mp4`);
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=64x48:rate=5:d=1',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      '-metadata',
      `title=${suffix}`,
      '-y',
      file,
    ]);
    const sha = await sha256File(file);
    const id = `test-new-${suffix}`;
    const labelA = `test-label-a-${suffix}`;
    const labelB = `test-label-b-${suffix}`;
    cleanupIds.push(id);
    cleanupLabels.push(labelA, labelB);
    cleanupKeys.push(videoKey(sha, file));
    const e: ResolvedEntry = { id, file: path.basename(file), absPath: file, labels: [labelA], description: 'generated test clip' };

    const first = await ingestCatalog({ pool, store, logger }, [e]);
    expect(first.failed).toEqual([]);
    expect(first.inserted).toEqual([id]);
    expect(first.uploaded).toBe(1);
    expect(await store.head(videoKey(sha, file))).toBe((await fs.stat(file)).size);
    const row = await pool.query<{ width: number; height: number; duration_s: number; codec: string; sha256: string }>(
      'SELECT width, height, duration_s, codec, sha256 FROM videos WHERE id = $1',
      [id],
    );
    expect(row.rows[0]).toMatchObject({ width: 64, height: 48, codec: 'h264', sha256: sha });
    expect(row.rows[0]!.duration_s).toBeCloseTo(1, 1);

    const relabelled = await ingestCatalog({ pool, store, logger }, [{ ...e, labels: [labelB] }]);
    expect(relabelled.updated).toEqual([id]);
    expect(relabelled.uploaded).toBe(0);
    const labels = await pool.query<{ label: string }>('SELECT label FROM video_labels WHERE video_id = $1', [id]);
    expect(labels.rows.map((r) => r.label)).toEqual([labelB]);

    const again = await ingestCatalog({ pool, store, logger }, [{ ...e, labels: [labelB] }]);
    expect(again.unchanged).toEqual([id]);
  });
});

describe('resolveLabel and searchCatalog', () => {
  beforeAll(async () => {
    // The search tests need the whole shared catalog in the database (the demo's ids).
    const report = await ingestCatalog({ pool, store, logger }, catalog);
    expect(report.failed).toEqual([]);
  });

  it("'bike' resolves to 'bicycle' through the synonyms", async () => {
    const r = await resolveLabel(pool, '  Bike ');
    expect(r.label).toBe('bicycle');
    expect(r.labels).toEqual(['bicycle']);
    expect(r.terms).toEqual(expect.arrayContaining(['bike', 'bicycle', 'cyclist']));
    expect(r.ancestors).toEqual(['vehicle']);
  });

  it('an unknown label resolves to itself', async () => {
    const r = await resolveLabel(pool, `no-such-label-${suffix}`);
    expect(r.label).toBe(`no-such-label-${suffix}`);
    expect(r.ancestors).toEqual([]);
  });

  it("'bike' finds g1 as a positive by label", async () => {
    const { resolved, hits } = await searchCatalog(pool, { label: 'bike', maxPositiveVideos: 50, maxNegativeVideos: 8, seed: 1 });
    expect(resolved.label).toBe('bicycle');
    const g1 = hits.find((h) => h.videoId === 'g1');
    expect(g1).toMatchObject({ role: 'positive', matchedBy: 'label', sha256: entry('g1').sha256 });
    expect(g1!.labels).toEqual(expect.arrayContaining(['bicycle', 'person']));
  });

  it("'animal' finds the dog and bird videos through descendants", async () => {
    const { resolved, hits } = await searchCatalog(pool, { label: 'animal', maxPositiveVideos: 50, maxNegativeVideos: 8, seed: 1 });
    expect(resolved.labels).toEqual(expect.arrayContaining(['animal', 'dog', 'bird', 'cockatoo']));
    const positives = hits.filter((h) => h.role === 'positive');
    const byId = new Map(positives.map((h) => [h.videoId, h]));
    expect(byId.get('VID_20191220_170832')?.matchedBy).toBe('descendant');
    expect(byId.get('cockatoo')?.matchedBy).toBe('descendant');
    // Nothing else in the shared catalog is an animal.
    const sharedIds = new Set(catalog.map((e) => e.id));
    expect(
      positives
        .filter((h) => sharedIds.has(h.videoId))
        .map((h) => h.videoId)
        .sort(),
    ).toEqual(['VID_20191220_170832', 'cockatoo']);
  });

  it.each(['bicycle', 'animal', 'person', 'object', 'abstract'])("negatives for '%s' are labelled, never positives, never ancestor-labelled", async (label) => {
    const { resolved, hits } = await searchCatalog(pool, { label, maxPositiveVideos: 50, maxNegativeVideos: 50, seed: 3 });
    const positives = new Set(hits.filter((h) => h.role === 'positive').map((h) => h.videoId));
    const negatives = hits.filter((h) => h.role === 'negative');
    expect(positives.size).toBeGreaterThan(0);
    expect(negatives.length).toBeGreaterThan(0);
    for (const n of negatives) {
      expect(positives.has(n.videoId)).toBe(false);
      expect(n.videoId).not.toBe('traitsui-test');
      expect(n.labels.length).toBeGreaterThan(0);
      for (const l of n.labels) {
        expect(resolved.labels).not.toContain(l);
        expect(resolved.ancestors).not.toContain(l);
      }
    }
    expect(hits.map((h) => h.videoId)).not.toContain('traitsui-test');
    expect(new Set(hits.map((h) => h.videoId)).size).toBe(hits.length);
  });

  it("'abstract' never takes 'animation' videos as negatives (its ancestor)", async () => {
    const { hits } = await searchCatalog(pool, { label: 'abstract', maxPositiveVideos: 50, maxNegativeVideos: 50, seed: 1 });
    const negIds = hits.filter((h) => h.role === 'negative').map((h) => h.videoId);
    for (const id of ['Megamind', 'retroMars2018', 'tupi-example']) expect(negIds).not.toContain(id);
    expect(hits.find((h) => h.videoId === 'DualDiscs')?.role).toBe('positive');
  });

  it('limits positives and negatives; deterministic for a seed', async () => {
    const q = { label: 'person', maxPositiveVideos: 2, maxNegativeVideos: 3, seed: 11 };
    const a = await searchCatalog(pool, q);
    const b = await searchCatalog(pool, q);
    expect(a.hits).toEqual(b.hits);
    expect(a.hits.filter((h) => h.role === 'positive')).toHaveLength(2);
    expect(a.hits.filter((h) => h.role === 'negative')).toHaveLength(3);
    // Positives matched by label rank before descendants.
    const all = await searchCatalog(pool, { ...q, maxPositiveVideos: 50 });
    const ranks = all.hits.filter((h) => h.role === 'positive').map((h) => ({ label: 0, descendant: 1, title: 2 })[h.matchedBy as 'label']);
    expect(ranks).toEqual([...ranks].sort((x, y) => x - y));
  });

  it('another seed samples the negatives in another order', async () => {
    // Every negative is taken, and only the shared catalog's are compared: tests running at
    // the same time ingest labelled videos of their own, which are negatives of 'cup' too.
    const sharedIds = new Set(catalog.map((e) => e.id));
    const neg = async (seed: number) =>
      (await searchCatalog(pool, { label: 'cup', maxPositiveVideos: 50, maxNegativeVideos: 1_000_000, seed })).hits
        .filter((h) => h.role === 'negative' && sharedIds.has(h.videoId))
        .map((h) => h.videoId);
    const orders = await Promise.all([1, 2, 3, 4].map(neg));
    expect(new Set(orders.map((o) => [...o].sort().join())).size).toBe(1);
    expect(new Set(orders.map((o) => o.join())).size).toBeGreaterThan(1);
  });
});
