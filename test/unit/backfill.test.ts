/**
 * Run identity (workflow ids from the request and the catalog generation), the
 * backfill's input schema, the CLI's request building, and the S3 source helpers.
 */
import { BackfillInput, backfillPageRunId, backfillWorkflowId, catalogDigest, formatIssues, NewCategoryInput, newCategoryWorkflowId } from '../../contracts';
import { parseS3Uri, prefixVideoId } from '../../activities/catalog/sources';
import { sinceTimestamp } from '../../activities/catalog/backfill';
import { backfillRequest, formatEta, type BackfillOptions } from '../../cli/commands/backfill';

const SHA = (c: string) => c.repeat(64);

describe('catalogDigest', () => {
  const a = { videoId: 'a', sha256: SHA('a'), role: 'positive' };
  const b = { videoId: 'b', sha256: SHA('b'), role: 'negative' };
  it('does not depend on order, and changes with what a run reads', () => {
    expect(catalogDigest([a, b])).toBe(catalogDigest([b, a]));
    expect(catalogDigest([a, b])).toMatch(/^[0-9a-z]{11}$/);
    expect(catalogDigest([a])).not.toBe(catalogDigest([a, b])); // a video added
    expect(catalogDigest([a, { ...b, sha256: SHA('c') }])).not.toBe(catalogDigest([a, b])); // content replaced
    expect(catalogDigest([a, { ...b, role: 'positive' }])).not.toBe(catalogDigest([a, b])); // role changed
    expect(catalogDigest([])).toBe(catalogDigest([]));
  });
});

describe('new-category run identity', () => {
  const base = NewCategoryInput.parse({ label: 'coin' });
  it('stays for the same work run differently (concurrency, heartbeats, queue)', () => {
    const same = NewCategoryInput.parse({
      label: 'coin',
      extractConcurrency: 16,
      extractBatching: { mode: 'off' },
      heartbeatTimeoutS: 5,
      gpuTaskQueue: 'gpu-2',
    });
    expect(newCategoryWorkflowId(same)).toBe(newCategoryWorkflowId(base));
  });
  it('changes with what the run makes', () => {
    expect(newCategoryWorkflowId(NewCategoryInput.parse({ label: 'coin', extract: { fps: 2 } }))).not.toBe(newCategoryWorkflowId(base));
    expect(newCategoryWorkflowId(NewCategoryInput.parse({ label: 'coin', maxPositiveVideos: 10 }))).not.toBe(newCategoryWorkflowId(base));
  });
  it('names the catalog generation: a new generation is a new run of the same request', () => {
    const g1 = newCategoryWorkflowId({ ...base, catalogGeneration: 'abc123' });
    const g2 = newCategoryWorkflowId({ ...base, catalogGeneration: 'def456' });
    expect(g1).toBe(`${newCategoryWorkflowId(base)}-cabc123`);
    expect(g2).not.toBe(g1);
    expect(g2.replace(/-c[^-]+$/, '')).toBe(g1.replace(/-c[^-]+$/, ''));
    expect(newCategoryWorkflowId({ ...base, catalogGeneration: 'abc123' })).toBe(g1);
  });
});

describe('backfill run identity', () => {
  const parse = (x: object) => BackfillInput.parse({ label: 'bicycle', ...x });
  it('is the same for the same work, whatever the concurrency, page size or id order', () => {
    const a = parse({ videoIds: ['b', 'a'], concurrency: 2, pageSize: 10 });
    const b = parse({ videoIds: ['a', 'b'], concurrency: 8, maxHistoryEvents: 5000, batching: { mode: 'off' } });
    expect(backfillWorkflowId(a)).toBe(backfillWorkflowId(b));
    expect(backfillWorkflowId(a)).toMatch(/^backfill-bicycle-[0-9a-z]{11}$/);
  });
  it('differs by selector, options and generation', () => {
    const ids = [
      parse({}),
      parse({ since: '2026-01-01' }),
      parse({ videoIds: ['a'] }),
      parse({ ingest: { kind: 'prefix', uri: 's3://incoming/new/' } }),
      parse({ ingest: { kind: 'folder', path: '/data/new' } }),
      parse({ extract: { mode: 'scene' } }),
      parse({ embed: false }),
      parse({ generation: 'g1' }),
      parse({ generation: 'g2' }),
    ].map(backfillWorkflowId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[7]).toMatch(/-gg1$/);
  });
  it('pages are runs named after the backfill', () => {
    expect(backfillPageRunId('backfill-x-1', 0)).toBe('backfill-x-1-p00001');
    expect(backfillPageRunId('backfill-x-1', 99)).toBe('backfill-x-1-p00100');
    expect(() => backfillPageRunId('b', -1)).toThrow(TypeError);
  });
});

describe('BackfillInput', () => {
  const issues = (x: object) => {
    const r = BackfillInput.safeParse({ label: 'bicycle', ...x });
    return r.success ? '' : formatIssues(r.error);
  };
  it('needs only a label and fills the defaults', () => {
    expect(BackfillInput.parse({ label: ' Bicycle ' })).toMatchObject({
      label: 'bicycle',
      embed: true,
      concurrency: 4,
      pageSize: 100,
      maxHistoryEvents: 8000,
      extract: { mode: 'fps', fps: 1 },
    });
  });
  it.each([
    [{ since: '2026-01-01', videoIds: ['a'] }, 'at most one of since, videoIds, ingest'],
    [{ since: 'yesterday' }, 'since'],
    [{ since: '2026-02-30T00:00:00' }, 'since'],
    [{ videoIds: [] }, 'videoIds'],
    [{ videoIds: ['a', 'a'] }, 'distinct'],
    [{ videoIds: ['../x'] }, 'videoIds.0'],
    [{ ingest: { kind: 'prefix', uri: 'https://bucket/x' } }, 'ingest.uri'],
    [{ ingest: { kind: 'folder', path: 'relative/dir' } }, 'absolute path'],
    [{ ingest: { kind: 'ftp', path: '/x' } }, 'ingest.kind'],
    [{ pageSize: 100, maxHistoryEvents: 1000 }, 'maxHistoryEvents must hold two pages'],
    [{ concurrency: 0 }, 'concurrency'],
    [{ extract: { mode: 'all' } }, 'extract.mode'],
  ])('%j is refused: %s', (x, needle) => {
    expect(issues(x)).toContain(needle);
  });
  it('takes dates and times with offsets', () => {
    expect(issues({ since: '2026-03-01' })).toBe('');
    expect(issues({ since: '2026-03-01T10:00:00+02:00' })).toBe('');
    expect(sinceTimestamp('2026-03-01')).toBe('2026-03-01T00:00:00Z');
    expect(sinceTimestamp('2026-03-01T10:00:00+02:00')).toBe('2026-03-01T10:00:00+02:00');
  });
});

describe('reelset backfill arguments', () => {
  const opts = (o: Partial<BackfillOptions>): BackfillOptions => ({ embed: true, batching: true, input: '{}', ...o });
  it('turns options into the workflow input', () => {
    const { input } = backfillRequest(
      'cup',
      opts({ prefix: 's3://incoming/new/', mode: 'scene', concurrency: '8', embed: false, input: '{"extract":{"fps":2},"pageSize":50}' }),
    );
    expect(input).toMatchObject({
      label: 'cup',
      ingest: { kind: 'prefix', uri: 's3://incoming/new/' },
      concurrency: 8,
      embed: false,
      pageSize: 50,
      extract: { mode: 'scene', fps: 2 },
      batching: { mode: 'auto', maxVideos: 25 },
    });
    expect(backfillRequest('cup', opts({ batching: false, input: '{"batching":{"maxVideos":10}}' })).input.batching).toMatchObject({
      mode: 'off',
      maxVideos: 10,
    });
    expect(backfillRequest('cup', opts({ folder: 'rel/dir' })).input.ingest).toEqual({ kind: 'folder', path: expect.stringMatching(/^\/.*\/rel\/dir$/) });
    expect(backfillRequest('cup', opts({ videos: ['a', 'b'] })).input.videoIds).toEqual(['a', 'b']);
  });
  it.each([
    [opts({ since: '2026-01-01', prefix: 's3://a/b' }), 'at most one of --since, --videos, --catalog, --prefix, --folder'],
    [opts({ mode: 'every' }), '--mode must be one of fps, scene, keyframes, count'],
    [opts({ input: '[1]' }), '--input must be a JSON object'],
    [opts({ input: '{' }), '--input is not valid JSON'],
    [opts({ concurrency: 'many' }), 'concurrency'],
    [opts({ prefix: 'bucket/x' }), 'ingest.uri'],
  ])('refuses bad usage before anything starts: %s', (o, needle) => {
    expect(() => backfillRequest('cup', o)).toThrow(expect.objectContaining({ name: 'UsageError', message: expect.stringContaining(needle) }));
  });
});

describe('S3 sources', () => {
  it('parses s3://bucket/prefix', () => {
    expect(parseS3Uri('s3://incoming/new/cam1/')).toEqual({ bucket: 'incoming', prefix: 'new/cam1/' });
    expect(parseS3Uri('s3://incoming')).toEqual({ bucket: 'incoming', prefix: '' });
    expect(() => parseS3Uri('s3:/incoming')).toThrow(/s3:\/\/bucket\/prefix/);
  });
  it('gives every object a catalog id of its own, stable and valid', () => {
    const ids = [
      prefixVideoId('incoming', 'new/clip 1.mp4'),
      prefixVideoId('incoming', 'new/clip_1.mp4'),
      prefixVideoId('other', 'new/clip 1.mp4'),
      prefixVideoId('incoming', 'new/clip 1.mov'),
      prefixVideoId('incoming', '-x/.hidden.mp4'),
    ];
    expect(ids.slice(0, 3).every((id, i, a) => a.indexOf(id) === i)).toBe(true);
    expect(ids[3]).toBe(ids[0]); // the extension is not part of the id
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/);
    expect(prefixVideoId('incoming', 'new/clip 1.mp4')).toBe(ids[0]);
  });
});

describe('formatEta', () => {
  it('writes hours, minutes and seconds, and a dash when unknown', () => {
    expect(formatEta(42.4)).toBe('42s');
    expect(formatEta(185)).toBe('3m 05s');
    expect(formatEta(3720)).toBe('1h 02m');
    expect(formatEta(undefined)).toBe('-');
    expect(formatEta(Infinity)).toBe('-');
  });
});
