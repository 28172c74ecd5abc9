import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CatalogError } from '../../contracts';
import { SHARED_CATALOG } from '../helpers/services';
import { catalogFromFolder, readCatalogFile, readTaxonomyFile } from '../../activities/catalog/catalog-file';
import { rejectionOf } from '../helpers/errors';

const TAXONOMY = path.resolve(__dirname, '../../infra/taxonomy.json');

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-catalog-test-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function writeCatalog(name: string, entries: unknown): Promise<string> {
  const file = path.join(tmp, name);
  await fs.writeFile(file, JSON.stringify(entries));
  return file;
}

const catalogError = (p: Promise<unknown>) => rejectionOf(p, CatalogError);

describe('readCatalogFile', () => {
  it('reads the shared catalog: 20 entries, every absPath exists', async () => {
    const entries = await readCatalogFile(SHARED_CATALOG);
    expect(entries).toHaveLength(20);
    expect(new Set(entries.map((e) => e.id)).size).toBe(20);
    for (const e of entries) {
      expect(path.isAbsolute(e.absPath)).toBe(true);
      expect(existsSync(e.absPath)).toBe(true);
      expect(e.absPath).toBe(path.resolve(path.dirname(SHARED_CATALOG), e.file));
      expect(e.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    const g1 = entries.find((e) => e.id === 'g1')!;
    expect(g1.labels).toEqual(['bicycle', 'person']);
    const t = entries.find((e) => e.id === 'traitsui-test')!;
    expect(t.labels).toEqual([]);
  });

  it('resolves relative paths against the catalog directory, lower-cases labels, fills defaults', async () => {
    const file = await writeCatalog('ok.json', [{ id: 'a.b_c-1', file: 'sub/x.mp4', labels: [' Dog '] }]);
    const [e] = await readCatalogFile(file);
    expect(e!.absPath).toBe(path.join(tmp, 'sub/x.mp4'));
    expect(e!.labels).toEqual(['dog']);
    expect(e!.description).toBe('');
  });

  it('a bad field -> CatalogError naming the file, the entry index, the id and the field', async () => {
    const file = await writeCatalog('bad-field.json', [
      { id: 'fine', file: 'a.mp4' },
      { id: 'broken', file: 'b.mp4', sha256: 'not-a-hash' },
    ]);
    const err = await catalogError(readCatalogFile(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('entry 1');
    expect(err.message).toContain('"broken"');
    expect(err.message).toContain('sha256');
    expect(err.name).toBe('CatalogError');
  });

  it('a nested bad field names its path; a bad id names the field "id"', async () => {
    const nested = await writeCatalog('bad-nested.json', [{ id: 'v', file: 'v.mp4', video: { width: -3 } }]);
    const e1 = await catalogError(readCatalogFile(nested));
    expect(e1.message).toContain('video.width');
    expect(e1.message).toContain('entry 0');
    const badId = await writeCatalog('bad-id.json', [{ id: 'has space', file: 'v.mp4' }]);
    const e2 = await catalogError(readCatalogFile(badId));
    expect(e2.message).toContain('field "id"');
    const noFile = await writeCatalog('no-file.json', [{ id: 'v' }]);
    expect((await catalogError(readCatalogFile(noFile))).message).toContain('field "file"');
  });

  it('duplicate ids are rejected', async () => {
    const file = await writeCatalog('dup.json', [
      { id: 'same', file: 'a.mp4' },
      { id: 'other', file: 'b.mp4' },
      { id: 'same', file: 'c.mp4' },
    ]);
    const err = await catalogError(readCatalogFile(file));
    expect(err.message).toContain('duplicate id "same"');
    expect(err.message).toContain('entry 2');
    expect(err.message).toContain(file);
  });

  it('not JSON, not an array, or missing -> CatalogError naming the file', async () => {
    const notJson = path.join(tmp, 'not.json');
    await fs.writeFile(notJson, '{ nope');
    expect((await catalogError(readCatalogFile(notJson))).message).toContain(notJson);
    const obj = await writeCatalog('obj.json', { id: 'x' });
    expect((await catalogError(readCatalogFile(obj))).message).toMatch(/expected a JSON array/);
    const missing = path.join(tmp, 'missing.json');
    expect((await catalogError(readCatalogFile(missing))).message).toContain(missing);
  });
});

describe('readTaxonomyFile', () => {
  it('reads infra/taxonomy.json with parents and synonyms', async () => {
    const t = await readTaxonomyFile(TAXONOMY);
    const bicycle = t.find((x) => x.name === 'bicycle')!;
    expect(bicycle.parent).toBe('vehicle');
    expect(bicycle.synonyms).toContain('bike');
    expect(t.find((x) => x.name === 'animal')!.parent).toBeNull();
    // Every parent is itself a taxonomy entry.
    const names = new Set(t.map((x) => x.name));
    for (const x of t) if (x.parent) expect(names.has(x.parent)).toBe(true);
  });

  it('a bad entry -> CatalogError naming the file, entry and field', async () => {
    const file = await writeCatalog('tax.json', [{ name: 'ok' }, { name: '', parent: 'ok' }]);
    const err = await catalogError(readTaxonomyFile(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('entry 1');
    expect(err.message).toContain('field "name"');
  });
});

describe('catalogFromFolder', () => {
  it('lists only video files, sorted, with safe ids and absolute paths', async () => {
    const dir = path.join(tmp, 'folder');
    await fs.mkdir(dir);
    for (const n of ['b clip.MP4', 'a.mov', 'notes.txt', '#weird%.mkv']) await fs.writeFile(path.join(dir, n), 'x');
    const entries = await catalogFromFolder(dir, ['dog']);
    expect(entries.map((e) => e.file)).toEqual(['#weird%.mkv', 'a.mov', 'b clip.MP4']);
    for (const e of entries) {
      expect(e.id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/);
      expect(e.absPath).toBe(path.join(dir, e.file));
      expect(e.labels).toEqual(['dog']);
    }
    expect(entries.find((e) => e.file === 'b clip.MP4')!.id).toBe('b_clip');
  });
});
