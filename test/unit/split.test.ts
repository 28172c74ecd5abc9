import { splitByVideo } from '../../domain/split';

function videos(spec: Record<string, number>): Array<{ videoId: string; label: string }> {
  return Object.entries(spec).flatMap(([label, n]) => Array.from({ length: n }, (_, i) => ({ videoId: `${label}-${i}`, label })));
}

describe('splitByVideo', () => {
  const input = videos({ bicycle: 8, dog: 5, cup: 2, tree: 1, planets: 1 });

  it('assigns every video exactly once; no video is in both splits', () => {
    const { splitOf } = splitByVideo(input, 0.25, 1);
    expect(splitOf.size).toBe(input.length);
    for (const v of input) expect(['train', 'validation']).toContain(splitOf.get(v.videoId));
    const train = new Set([...splitOf].filter(([, s]) => s === 'train').map(([id]) => id));
    const val = new Set([...splitOf].filter(([, s]) => s === 'validation').map(([id]) => id));
    for (const id of val) expect(train.has(id)).toBe(false);
    expect(train.size + val.size).toBe(input.length);
  });

  it('is deterministic for a seed and independent of input order', () => {
    const a = splitByVideo(input, 0.25, 7);
    const b = splitByVideo([...input].reverse(), 0.25, 7);
    expect([...b.splitOf].sort()).toEqual([...a.splitOf].sort());
    expect(b.labelsWithoutValidation).toEqual(a.labelsWithoutValidation);
  });

  it('different seeds give different splits (for a label with many videos)', () => {
    const many = videos({ bicycle: 40 });
    const val = (seed: number) =>
      [...splitByVideo(many, 0.25, seed).splitOf]
        .filter(([, s]) => s === 'validation')
        .map(([id]) => id)
        .sort();
    expect(val(1)).toHaveLength(10);
    expect(val(2)).toHaveLength(10);
    expect(val(1)).not.toEqual(val(2));
  });

  it('labels with one video go to train and are reported', () => {
    const { splitOf, labelsWithoutValidation } = splitByVideo(input, 0.25, 1);
    expect(splitOf.get('tree-0')).toBe('train');
    expect(splitOf.get('planets-0')).toBe('train');
    expect(labelsWithoutValidation.sort()).toEqual(['planets', 'tree']);
  });

  it('every label with >= 2 videos has at least one validation and at least one train video', () => {
    for (const fraction of [0.01, 0.25, 0.5, 0.9]) {
      const { splitOf, labelsWithoutValidation } = splitByVideo(input, fraction, 3);
      for (const label of ['bicycle', 'dog', 'cup']) {
        const ids = input.filter((v) => v.label === label).map((v) => v.videoId);
        const nVal = ids.filter((id) => splitOf.get(id) === 'validation').length;
        expect(nVal).toBeGreaterThanOrEqual(1);
        expect(nVal).toBeLessThanOrEqual(ids.length - 1);
        expect(labelsWithoutValidation).not.toContain(label);
      }
    }
  });

  it('holds out round(n * fraction) videos per label', () => {
    const { splitOf } = splitByVideo(videos({ bicycle: 8 }), 0.25, 1);
    expect([...splitOf.values()].filter((s) => s === 'validation')).toHaveLength(2);
  });

  it('fraction 0 puts everything in train and reports every label', () => {
    const { splitOf, labelsWithoutValidation } = splitByVideo(input, 0, 1);
    expect([...splitOf.values()].every((s) => s === 'train')).toBe(true);
    expect(labelsWithoutValidation.sort()).toEqual(['bicycle', 'cup', 'dog', 'planets', 'tree']);
  });

  it('adding a video moves no other video', () => {
    const before = splitByVideo(videos({ dog: 12 }), 0.25, 5).splitOf;
    const after = splitByVideo([...videos({ dog: 12 }), { videoId: 'dog-new', label: 'dog' }], 0.25, 5).splitOf;
    // The 13-video label holds out round(3.25) = 3 videos, as the 12-video one did.
    let moved = 0;
    for (const [id, s] of before) if (after.get(id) !== s) moved++;
    expect(moved).toBeLessThanOrEqual(1);
  });

  it('a duplicated video id is assigned once', () => {
    const { splitOf } = splitByVideo([...videos({ cup: 3 }), { videoId: 'cup-0', label: 'cup' }], 0.34, 1);
    expect(splitOf.size).toBe(3);
  });
});
