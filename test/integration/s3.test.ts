import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Pool } from 'pg';
import { stepManifestKey, type StepManifest } from '../../contracts';
import { sha256Hex } from '../../lib/hash';
import { readStepManifest, runStep } from '../../lib/runs';
import { ObjectStore } from '../../lib/s3';
import { deleteBucket, deletePrefix, requireServices, uniqueSuffix, type Services } from '../helpers/services';

jest.setTimeout(30_000);

let svc: Services;
let store: ObjectStore;
let pool: Pool;
const suffix = uniqueSuffix();
const prefix = `test/s3-${suffix}/`;
const workflowId = `test-s3-${suffix}`;

beforeAll(async () => {
  svc = await requireServices();
  store = svc.store;
  pool = svc.pool;
});

const createdBuckets: ObjectStore[] = [];

afterAll(async () => {
  if (svc) {
    await pool.query('DELETE FROM runs WHERE workflow_id = $1', [workflowId]).catch(() => undefined);
    await deletePrefix(store, prefix).catch(() => undefined);
    await deletePrefix(store, `runs/${workflowId}/`).catch(() => undefined);
    for (const b of createdBuckets) await deleteBucket(b).catch(() => undefined);
  }
  await svc?.close();
});

describe('ObjectStore against the S3 server', () => {
  it('ensureBucket is idempotent', async () => {
    await expect(store.ensureBucket()).resolves.toBeUndefined();
    await expect(store.ensureBucket()).resolves.toBeUndefined();
  });

  it('ensureBucket creates a missing bucket', async () => {
    const bucket = `reelset-test-${suffix}`.slice(0, 63);
    const other = new ObjectStore(bucket, store.client);
    createdBuckets.push(other);
    expect(await other.head('nothing')).toBeUndefined();
    await other.ensureBucket();
    await other.ensureBucket();
    await other.put('k', 'v');
    expect((await other.get('k'))?.toString()).toBe('v');
  });

  it("put (one signed request without the SDK middleware) with the caller's payload hash stores what get and download read, for awkward keys too; a wrong payload hash is refused", async () => {
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff));
    for (const key of [`${prefix}frames/000001000.jpg`, `${prefix}odd name (1) 'x'*!~ é.jpg`]) {
      await store.put(key, bytes, 'image/jpeg', sha256Hex(bytes));
      expect((await store.get(key))!.equals(bytes)).toBe(true);
    }
    await store.put(`${prefix}no-hash.bin`, bytes, 'application/octet-stream');
    expect(await store.head(`${prefix}no-hash.bin`)).toBe(bytes.length);
    const file = path.join(os.tmpdir(), `reelset-s3-download-${suffix}`);
    try {
      await store.download(`${prefix}no-hash.bin`, file);
      expect((await fs.readFile(file)).equals(bytes)).toBe(true);
      await expect(store.download(`${prefix}missing.bin`, file)).rejects.toMatchObject({ name: 'NoSuchKey', status: 404 });
    } finally {
      await fs.rm(file, { force: true });
    }
    // The server checks the body against the signed hash: a corrupted frame is never stored.
    await expect(store.put(`${prefix}bad.jpg`, bytes, 'image/jpeg', sha256Hex(Buffer.from('other')))).rejects.toMatchObject({ status: 400 });
    expect(await store.head(`${prefix}bad.jpg`)).toBeUndefined();
  });

  it('put/get round-trips bytes and strings; head gives the size', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
    await store.put(`${prefix}bin`, bytes);
    const got = await store.get(`${prefix}bin`);
    expect(got).toBeInstanceOf(Buffer);
    expect(got!.equals(bytes)).toBe(true);
    expect(await store.head(`${prefix}bin`)).toBe(bytes.length);

    const text = 'héllo wörld ✓';
    await store.put(`${prefix}text`, text, 'text/plain');
    expect((await store.get(`${prefix}text`))!.toString('utf8')).toBe(text);
    expect(await store.head(`${prefix}text`)).toBe(Buffer.byteLength(text));

    await store.put(`${prefix}empty`, Buffer.alloc(0));
    expect(await store.head(`${prefix}empty`)).toBe(0);
    expect((await store.get(`${prefix}empty`))!.length).toBe(0);
  });

  it('overwrites an object with a whole-object PUT', async () => {
    await store.put(`${prefix}over`, 'first version');
    await store.put(`${prefix}over`, 'v2');
    expect((await store.get(`${prefix}over`))!.toString()).toBe('v2');
    expect(await store.head(`${prefix}over`)).toBe(2);
  });

  it('putJson/getJson round-trip a document', async () => {
    const doc = { a: 1, b: [true, null, 'x'], nested: { s: 'ü' } };
    await store.putJson(`${prefix}doc.json`, doc);
    expect(await store.getJson(`${prefix}doc.json`)).toEqual(doc);
  });

  it('a missing key gives undefined from get, getJson and head', async () => {
    expect(await store.get(`${prefix}missing`)).toBeUndefined();
    expect(await store.getJson(`${prefix}missing.json`)).toBeUndefined();
    expect(await store.head(`${prefix}missing`)).toBeUndefined();
  });

  it('list returns every key under a prefix, sorted, and nothing outside it', async () => {
    const p = `${prefix}list/`;
    const keys = ['b/2', 'a', 'c with space', 'b/1', 'ä-unicode'].map((k) => p + k);
    await Promise.all(keys.map((k) => store.put(k, k)));
    await store.put(`${prefix}list-sibling`, 'x');
    const listed = await store.list(p);
    expect(listed).toEqual([...keys].sort());
    expect(await store.list(`${p}b/`)).toEqual([`${p}b/1`, `${p}b/2`]);
    expect(await store.list(`${prefix}nothing-here/`)).toEqual([]);
  });

  it('list follows continuation tokens across pages', async () => {
    // Few keys, small pages: wrap send so every ListObjectsV2 asks for 2 keys per page.
    const p = `${prefix}pages/`;
    const keys = Array.from({ length: 7 }, (_, i) => `${p}k${i}`);
    await Promise.all(keys.map((k) => store.put(k, 'x')));
    const client = store.client;
    const original = client.send.bind(client);
    let listCalls = 0;
    const spy = jest.spyOn(client, 'send').mockImplementation(((cmd: { constructor: { name: string }; input: Record<string, unknown> }, ...rest: unknown[]) => {
      if (cmd.constructor.name === 'ListObjectsV2Command') {
        listCalls++;
        cmd.input.MaxKeys = 2;
      }
      return (original as (...a: unknown[]) => unknown)(cmd, ...rest);
    }) as never);
    try {
      expect(await store.list(p)).toEqual(keys);
    } finally {
      spy.mockRestore();
    }
    expect(listCalls).toBe(4);
  });

  it('deleteMany removes the given keys, ignores missing ones, leaves the others', async () => {
    const p = `${prefix}del/`;
    const keys = ['a', 'b', 'c', 'keep'].map((k) => p + k);
    await Promise.all(keys.map((k) => store.put(k, 'x')));
    await store.deleteMany([`${p}a`, `${p}b`, `${p}c`, `${p}never-existed`]);
    expect(await store.list(p)).toEqual([`${p}keep`]);
    await expect(store.deleteMany([])).resolves.toBeUndefined();
  });

  it('uri names the bucket and key', () => {
    expect(store.uri('a/b')).toBe(`s3://${svc.config.S3_BUCKET}/a/b`);
  });

  it('sha256Hex', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('runStep', () => {
  beforeAll(async () => {
    await pool.query(`INSERT INTO runs (workflow_id, kind, label, input) VALUES ($1, 'test', 'test', '{}')`, [workflowId]);
  });

  it('computes once, then reuses the manifest; writes the run_steps row', async () => {
    const compute = jest.fn(async () => ({ summary: { frames: 3, label: 'dog' }, extra: { items: ['a', 'b'] } }));
    const first = await runStep({ store, pool }, workflowId, 'extract', compute);
    expect(first.reused).toBe(false);
    expect(first.frames).toBe(3);
    expect(first.label).toBe('dog');
    expect(first.manifestKey).toBe(stepManifestKey(workflowId, 'extract'));
    expect(first.manifestKey).toBe(`runs/${workflowId}/extract/manifest.json`);

    const manifest = await readStepManifest<StepManifest<{ frames: number }> & { items: string[] }>(store, workflowId, 'extract');
    expect(manifest.summary).toEqual({ frames: 3, label: 'dog' });
    expect(manifest.items).toEqual(['a', 'b']);
    expect(manifest.step).toBe('extract');
    expect(manifest.workflowId).toBe(workflowId);

    const second = await runStep({ store, pool }, workflowId, 'extract', compute);
    expect(compute).toHaveBeenCalledTimes(1);
    expect(second.reused).toBe(true);
    expect(second.frames).toBe(3);
    expect(second.durationMs).toBe(first.durationMs);

    const rows = await pool.query<{ manifest_key: string; summary: unknown; duration_ms: number }>(
      'SELECT manifest_key, summary, duration_ms FROM run_steps WHERE workflow_id = $1 AND step = $2',
      [workflowId, 'extract'],
    );
    expect(rows.rowCount).toBe(1);
    expect(rows.rows[0]!.manifest_key).toBe(first.manifestKey);
    expect(rows.rows[0]!.summary).toEqual({ frames: 3, label: 'dog' });
    expect(rows.rows[0]!.duration_ms).toBe(first.durationMs);
  });

  it('counts a fan-out step from when it began, not from the gathering activity (the report agrees with the CLI)', async () => {
    const began = Date.now() - 7_100;
    const r = await runStep({ store, pool }, workflowId, 'fanout', async () => ({ summary: { n: 2 } }), { startedAtMs: began });
    expect(r.durationMs).toBeGreaterThanOrEqual(7_100);
    expect(r.durationMs).toBeLessThan(7_100 + 5_000);
    const rows = await pool.query<{ duration_ms: number }>('SELECT duration_ms FROM run_steps WHERE workflow_id = $1 AND step = $2', [workflowId, 'fanout']);
    expect(rows.rows[0]!.duration_ms).toBe(r.durationMs);
  });

  it('repairs a missing run_steps row from an existing manifest without recomputing', async () => {
    const compute = jest.fn(async () => ({ summary: { n: 1 } }));
    await runStep({ store, pool }, workflowId, 'search', compute);
    await pool.query('DELETE FROM run_steps WHERE workflow_id = $1 AND step = $2', [workflowId, 'search']);
    const again = await runStep({ store, pool }, workflowId, 'search', compute);
    expect(again.reused).toBe(true);
    expect(compute).toHaveBeenCalledTimes(1);
    const rows = await pool.query('SELECT 1 FROM run_steps WHERE workflow_id = $1 AND step = $2', [workflowId, 'search']);
    expect(rows.rowCount).toBe(1);
  });

  it('a failing compute writes neither manifest nor row', async () => {
    await expect(
      runStep({ store, pool }, workflowId, 'dataset', async () => {
        throw new Error('compute failed');
      }),
    ).rejects.toThrow('compute failed');
    expect(await store.head(stepManifestKey(workflowId, 'dataset'))).toBeUndefined();
    const rows = await pool.query('SELECT 1 FROM run_steps WHERE workflow_id = $1 AND step = $2', [workflowId, 'dataset']);
    expect(rows.rowCount).toBe(0);
    await expect(readStepManifest(store, workflowId, 'dataset')).rejects.toThrow(/step manifest of "dataset" \(the step has not run\) is missing/);
  });
});
