import { nearDuplicateClusters } from '../../activities/dedupe/ann';
import { planDedupe, type PlanInput } from '../../activities/dedupe/plan';
import { chooseRepresentatives, exactDuplicates, farthestPointSelect, representativeScore } from '../../activities/dedupe/select';

/** Unit vectors in 2-d at the given angles (degrees). */
function at(...deg: number[]): Float32Array {
  return Float32Array.from(deg.flatMap((a) => [Math.cos((a * Math.PI) / 180), Math.sin((a * Math.PI) / 180)]));
}
const cluster: PlanInput['cluster'] = async (v, d) => nearDuplicateClusters(v, d, { threshold: 0.95 });
const q = (sharpness: number, brightness = 128) => ({ sharpness, brightness });

describe('representatives and budget', () => {
  it('scores sharpness rank, centrality and exposure', () => {
    expect(representativeScore(1, 1, 128)).toBeCloseTo(1);
    expect(representativeScore(0, 0, 0)).toBeCloseTo(0);
    expect(representativeScore(1, 0, 128)).toBeGreaterThan(representativeScore(0, 1, 128));
  });

  it('picks the sharp, central, well-exposed member', () => {
    const v = at(0, 5, 10, 90);
    // Row 1 is central and sharpest; row 0 is as sharp but at the edge; row 2 is dark.
    expect(chooseRepresentatives(v, 2, [[0, 1, 2], [3]], [q(100), q(120), q(50, 10), q(1)])).toEqual([1, 3]);
    // A blurred central frame loses to a sharp one.
    expect(chooseRepresentatives(v, 2, [[0, 1, 2]], [q(500), q(1), q(2)])).toEqual([0]);
  });

  it('farthest-point selection keeps the most distinct frames within the budget', () => {
    const v = at(0, 1, 2, 90, 91, 180);
    expect(farthestPointSelect(v, 2, [0, 1, 2, 3, 4, 5], 3)).toEqual([0, 5, 3]);
    expect(farthestPointSelect(v, 2, [0, 1], 5)).toEqual([0, 1]);
    expect(farthestPointSelect(v, 2, [0, 1, 3], 0)).toEqual([]);
    // Excluded (already labelled) frames count as chosen: 0 is covered, so 5 then 3.
    expect(farthestPointSelect(v, 2, [1, 3, 5], 2, [0])).toEqual([5, 3]);
  });

  it('exact duplicates map to the first row with the same hash', () => {
    const { firstOf, unique } = exactDuplicates(['a', 'b', 'a', 'c', 'b']);
    expect(Array.from(firstOf)).toEqual([0, 1, 0, 3, 1]);
    expect(unique).toEqual([0, 1, 3]);
  });
});

describe('planDedupe', () => {
  const empty = { vectors: new Float32Array(0), keys: [], videoIds: [], pixelHashes: [] };

  it('folds exact duplicates, clusters, and sends new representatives within the budget', async () => {
    // Three shots of label "cat" (0-2 deg, 60 deg, 120 deg) and one of "other" (200 deg); row 1 repeats row 0's pixels.
    const plan = await planDedupe({
      dim: 2,
      run: {
        vectors: at(0, 0, 2, 60, 120, 200),
        keys: ['a', 'b', 'c', 'd', 'e', 'f'],
        videoIds: ['v1', 'v1', 'v1', 'v1', 'v2', 'v3'],
        pixelHashes: ['h0', 'h0', 'h2', 'h3', 'h4', 'h5'],
        quality: [q(10, 10), q(10, 10), q(50), q(1), q(1), q(1)],
        group: ['cat', 'cat', 'cat', 'cat', 'cat', 'other'],
      },
      earlier: empty,
      labelBudget: 2,
      cluster,
    });
    expect(plan.exactDuplicates).toBe(1);
    expect(plan.clusteredRows).toBe(5);
    expect(plan.clusters.map((c) => [...c.members].sort())).toEqual([[0, 1, 2], [3], [4], [5]]);
    expect(plan.clusters[0]!.exactDuplicates).toBe(1);
    expect(plan.clusters[0]!.representative).toBe(2); // the sharpest, well exposed
    // Budget 2 for "cat": the biggest cluster first, then the farthest from it (120 deg), not 60 deg.
    expect(plan.clusters.filter((c) => c.toLabel).map((c) => c.representative)).toEqual([2, 4, 5]);
    expect(plan.overBudget).toEqual({ cat: 1 });
    expect(plan.added).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('marks content an earlier run had as seen, and adds only unseen frames to the index', async () => {
    const plan = await planDedupe({
      dim: 2,
      run: {
        vectors: at(0, 61, 150),
        keys: ['new-near-old', 'same-frame', 'new'],
        videoIds: ['v1', 'v1', 'v2'],
        pixelHashes: ['x', 'y', 'z'],
        quality: [q(1), q(1), q(1)],
        group: ['cat', 'cat', 'cat'],
      },
      earlier: { vectors: at(1, 61, 300), keys: ['old', 'same-frame', 'unrelated'], videoIds: ['v0', 'v1', 'v9'], pixelHashes: ['o', 'y', 'u'] },
      labelBudget: 10,
      cluster,
    });
    expect(plan.earlierFrames).toBe(3);
    expect(plan.clusters[1]!.seenKeys).toEqual(['same-frame']);
    expect(plan.clusters.map((c) => [c.members, c.seenAs, c.toLabel])).toEqual([
      [[0], 'old', false],
      [[1], 'same-frame', false],
      [[2], undefined, true],
    ]);
    expect(plan.added).toEqual([0, 2]);
  });

  it('lists every labelled earlier frame of a cluster in seenKeys, first, however many unlabelled ones come before it', async () => {
    // One shot seen by an earlier run in 60 frames (all reused by this run); the earlier run
    // labelled frame 45 only. With the first 32 keys alone the label step missed it and sent
    // the content to labelling again (seen in the run-identity e2e test).
    const n = 60;
    const keys = Array.from({ length: n }, (_, i) => `f${i}`);
    const rows = { vectors: at(...keys.map((_, i) => i * 0.01)), keys, videoIds: keys.map(() => 'v1'), pixelHashes: keys.map((k) => `h-${k}`) };
    const base = { dim: 2, run: { ...rows, quality: keys.map(() => q(1)), group: keys.map(() => 'cat') }, earlier: rows, labelBudget: 10, cluster };
    const without = await planDedupe(base);
    expect(without.clusters).toHaveLength(1);
    expect(without.clusters[0]!.seenKeys).toHaveLength(32);
    expect(without.clusters[0]!.seenKeys).not.toContain('f45');
    const plan = await planDedupe({ ...base, labelled: new Set(['f45']) });
    expect(plan.clusters[0]!.seenKeys![0]).toBe('f45');
    expect(plan.clusters[0]!.seenAs).toBe('f45');
    expect(plan.clusters[0]!.seenKeys).toHaveLength(33);
    expect(plan.clusters[0]!.toLabel).toBe(false);
  });
});
