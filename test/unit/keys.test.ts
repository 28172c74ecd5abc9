/**
 * The S3 key layout: one sanitiser for every outside name, tested against what breaks
 * naive ones (traversal, separators, NUL, very long and non-ASCII names), and one
 * function per kind of key.
 */
import {
  contactSheetKey,
  datasetManifestKey,
  dedupeSegmentBase,
  extensionOf,
  frameKey,
  framesManifestKey,
  keySegment,
  MAX_SEGMENT_LENGTH,
  modelPrefix,
  newCategoryWorkflowId,
  NewCategoryInput,
  runPrefix,
  shortHash,
  stableJson,
  stepFileKey,
  stepManifestKey,
  vectorPackBase,
  videoKey,
} from '../../contracts';

const SHA = 'a'.repeat(64);
const SAFE = /^[A-Za-z0-9._-]+$/;

describe('keySegment', () => {
  it('keeps safe names as they are', () => {
    for (const s of ['new-category-coin-1a2b', 'person', 'v1.2_x-y', 'A.b']) expect(keySegment(s)).toBe(s);
  });

  it.each([
    ['..', 'a traversal'],
    ['.', 'the current directory'],
    ['...', 'only dots'],
    ['', 'empty'],
    ['a/b', 'a separator'],
    ['../../etc/passwd', 'a traversal with separators'],
    ['a\u0000b', 'NUL'],
    ['a\\b', 'a backslash'],
    ['café', 'non-ASCII'],
    ['自転車', 'non-Latin'],
    ['emoji 🚲 bike', 'emoji and spaces'],
    ['x'.repeat(5000), 'very long'],
    ['new-category/extract/v1', 'a child workflow id'],
  ])('%j (%s) becomes one safe, non-empty, bounded segment', (raw) => {
    const s = keySegment(raw);
    expect(s).toMatch(SAFE);
    expect(s).not.toMatch(/^\.+$/);
    expect(s.length).toBeGreaterThan(0);
    expect(s.length).toBeLessThanOrEqual(MAX_SEGMENT_LENGTH);
    expect(s).not.toContain('/');
    expect(s).not.toContain('\u0000');
    expect(keySegment(raw)).toBe(s); // deterministic
  });

  it('never maps two different names to one segment', () => {
    const names = [
      'a/b',
      'a_b',
      'a b',
      'a\u0000b',
      'café',
      'caf_',
      'cafe',
      '..',
      '_..',
      '__',
      'x'.repeat(500),
      'x'.repeat(501),
      `${'x'.repeat(130)}a`,
      `${'x'.repeat(130)}b`,
    ];
    const segs = names.map(keySegment);
    expect(new Set(segs).size).toBe(names.length);
  });

  it('shortHash is stable and spreads', () => {
    expect(shortHash('abc')).toBe(shortHash('abc'));
    expect(shortHash('abc')).not.toBe(shortHash('abd'));
    expect(shortHash('')).toMatch(/^[0-9a-z]{11}$/);
  });
});

describe('keys', () => {
  it('frame keys are ms timestamps, 9 digits, negative ones marked', () => {
    expect(frameKey(SHA, '0123456789abcdef', 1.2344, 'jpg')).toBe(`frames/${SHA}/0123456789abcdef/000001234.jpg`);
    expect(frameKey(SHA, '0123456789abcdef', -0.04, 'webp')).toBe(`frames/${SHA}/0123456789abcdef/m000000040.webp`);
    expect(framesManifestKey(SHA, '0123456789abcdef')).toBe(`frames/${SHA}/0123456789abcdef/manifest.json`);
  });

  it('content hashes must be hex: a name can never reach a key through them', () => {
    expect(() => frameKey('../x', '0123456789abcdef', 0, 'jpg')).toThrow(/hex/);
    expect(() => framesManifestKey(SHA, 'p/../q')).toThrow(/hex/);
    expect(() => videoKey('ABC', 'a.mp4')).toThrow(/hex/);
  });

  it('video keys keep a short, clean extension', () => {
    expect(videoKey(SHA, 'Clip.MP4')).toBe(`videos/${SHA}.mp4`);
    expect(videoKey(SHA, 'noext')).toBe(`videos/${SHA}`);
    expect(extensionOf('evil.mp4/../../x')).toBe('');
    expect(extensionOf('a.tar.gz')).toBe('.gz');
  });

  it('run, step and dataset keys sanitise every outside part', () => {
    expect(runPrefix('new-category-coin-1a2b')).toBe('runs/new-category-coin-1a2b');
    expect(stepManifestKey('new-category-coin-1a2b', 'search')).toBe('runs/new-category-coin-1a2b/search/manifest.json');
    expect(runPrefix('../../x')).toMatch(/^runs\/[A-Za-z0-9._-]+$/);
    expect(stepFileKey('wf', 'train', 'model/../../weights.bin')).toMatch(/^runs\/wf\/train\/model\/_[^/]+\/_[^/]+\/weights\.bin$/);
    expect(contactSheetKey('wf', 'a b')).toMatch(/^runs\/wf\/dedupe\/contact-sheet-a_b-[0-9a-z]+\.jpg$/);
    expect(datasetManifestKey('coin', 3)).toBe('datasets/coin/v3/manifest.json');
    expect(() => datasetManifestKey('coin', 0)).toThrow();
    expect(modelPrefix('hot dog', 1, 'student')).toMatch(/^models\/hot_dog-[0-9a-z]+\/v1\/student$/);
    expect(dedupeSegmentBase('coin', 'mobilenet_v2-abc-224-x', 'wf/1')).toMatch(/^dedupe-index\/coin\/mobilenet_v2-abc-224-x\/wf_1-[0-9a-z]+$/);
    expect(vectorPackBase('m', SHA, 'ab12cd34')).toBe(`embeddings/m/${SHA}/ab12cd34`);
  });
});

describe('workflow ids', () => {
  it('depend on the whole defaulted input, not on key order', () => {
    const a = NewCategoryInput.parse({ label: 'coin', seed: 2, maxNegativeVideos: 3 });
    const b = NewCategoryInput.parse({ maxNegativeVideos: 3, seed: 2, label: 'coin' });
    expect(stableJson(a)).toBe(stableJson(b));
    expect(newCategoryWorkflowId(a)).toBe(newCategoryWorkflowId(b));
    expect(newCategoryWorkflowId(a)).toMatch(/^new-category-coin-[0-9a-z]{11}$/);
    expect(newCategoryWorkflowId(NewCategoryInput.parse({ label: 'coin', seed: 3 }))).not.toBe(newCategoryWorkflowId(a));
    expect(newCategoryWorkflowId(NewCategoryInput.parse({ label: 'hot dog' }))).toMatch(/^new-category-hot-dog-/);
  });
});
