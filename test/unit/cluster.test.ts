import { leaderCluster } from '../../activities/dedupe/cluster';
import { mulberry32 } from '../../activities/training/rng';

const rng = mulberry32;

function normalise(v: number[]): number[] {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** `perCluster` noisy copies of each of `k` orthogonal axes in `dim` dimensions, interleaved. */
function synthetic(k: number, perCluster: number, dim: number, noise: number, seed = 1) {
  const rand = rng(seed);
  const rows: number[][] = [];
  const truth: number[] = [];
  for (let j = 0; j < perCluster; j++)
    for (let c = 0; c < k; c++) {
      const v = Array.from({ length: dim }, (_, d) => (d === c ? 1 : 0) + (rand() - 0.5) * 2 * noise);
      rows.push(normalise(v));
      truth.push(c);
    }
  return { vectors: Float32Array.from(rows.flat()), truth };
}

describe('leaderCluster', () => {
  it('recovers known clusters of synthetic unit vectors', () => {
    const { vectors, truth } = synthetic(4, 6, 16, 0.05);
    const clusters = leaderCluster(vectors, 16, 0.9);
    expect(clusters).toHaveLength(4);
    const all = clusters.flatMap((c) => c.members).sort((a, b) => a - b);
    expect(all).toEqual(truth.map((_, i) => i));
    for (const c of clusters) {
      expect(c.members).toHaveLength(6);
      const t = truth[c.representative];
      for (const m of c.members) expect(truth[m]).toBe(t);
    }
  });

  it('threshold 1.0 keeps distinct vectors apart; identical vectors still merge', () => {
    const { vectors } = synthetic(3, 3, 8, 0.05);
    expect(leaderCluster(vectors, 8, 1.0)).toHaveLength(9);
    const same = Float32Array.from([...normalise([1, 2, 3]), ...normalise([1, 2, 3]), ...normalise([3, 2, 1])]);
    const c = leaderCluster(same, 3, 0.999999);
    expect(c.map((x) => x.members)).toEqual([[0, 1], [2]]);
  });

  it('a low threshold merges everything into one cluster', () => {
    const { vectors } = synthetic(3, 4, 8, 0.05);
    const c = leaderCluster(vectors, 8, -1);
    expect(c).toHaveLength(1);
    expect(c[0]!.members).toHaveLength(12);
  });

  it('joins at exactly the threshold and splits just above the pair similarity', () => {
    // cos(a, b) = 0.8 exactly (representable well enough in float32).
    const v = Float32Array.from([1, 0, 0.8, 0.6]);
    expect(leaderCluster(v, 2, 0.79)).toHaveLength(1);
    expect(leaderCluster(v, 2, 0.81)).toHaveLength(2);
  });

  it('the representative is the first member in visiting order', () => {
    const { vectors, truth } = synthetic(2, 4, 4, 0.05);
    const order = [7, 6, 5, 4, 3, 2, 1, 0];
    const clusters = leaderCluster(vectors, 4, 0.9, order);
    expect(clusters).toHaveLength(2);
    expect(clusters[0]!.representative).toBe(7);
    expect(clusters[0]!.members[0]).toBe(7);
    expect(clusters[1]!.representative).toBe(6);
    for (const c of clusters) {
      // Members appear in visiting order.
      const pos = c.members.map((m) => order.indexOf(m));
      expect(pos).toEqual([...pos].sort((a, b) => a - b));
      for (const m of c.members) expect(truth[m]).toBe(truth[c.representative]);
    }
    // Default order: row order.
    expect(leaderCluster(vectors, 4, 0.9).map((c) => c.representative)).toEqual([0, 1]);
  });

  it('joins the most similar leader, not the first one above the threshold', () => {
    // Leaders a=(1,0) and b=(0,1) (cos 0); x=(0.6,0.8) is above 0.5 with both, closer to b.
    const v = Float32Array.from([1, 0, 0, 1, 0.6, 0.8]);
    expect(leaderCluster(v, 2, 0.5).map((k) => k.members)).toEqual([[0], [1, 2]]);
    // With the leaders visited the other way round it still picks b.
    expect(leaderCluster(v, 2, 0.5, [1, 0, 2]).map((k) => k.members)).toEqual([[1, 2], [0]]);
  });

  it('empty input gives no cluster; a bad length is a RangeError', () => {
    expect(leaderCluster(new Float32Array(0), 8, 0.9)).toEqual([]);
    expect(() => leaderCluster(new Float32Array(7), 2, 0.9)).toThrow(RangeError);
  });
});
