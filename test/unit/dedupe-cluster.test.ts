import { nearDuplicateClusters, project, rowDot, sparseProjection, UnionFind } from '../../activities/dedupe/ann';
import { InvalidInputError } from '../../contracts';
import { clusterAgreement, syntheticClusters } from '../helpers/synthetic';

jest.setTimeout(120_000);

describe('UnionFind', () => {
  it('merges sets and numbers clusters by their first row', () => {
    const uf = new UnionFind(6);
    expect(uf.union(4, 1)).toBe(true);
    expect(uf.union(1, 4)).toBe(false);
    uf.union(5, 3);
    uf.union(3, 4);
    expect(uf.find(5)).toBe(1);
    const { clusterOf, count } = uf.labels();
    expect(count).toBe(3);
    expect(Array.from(clusterOf)).toEqual([0, 1, 2, 1, 1, 1]);
  });
});

describe('sparse random projection', () => {
  it('is deterministic per seed and keeps cosines approximately', () => {
    const { vectors, dim, truth } = syntheticClusters(200, 1280, 3);
    const a = project(vectors, dim, sparseProjection(dim, 64, 7));
    const b = project(vectors, dim, sparseProjection(dim, 64, 7));
    expect(a).toEqual(b);
    const cos = (m: Float32Array, d: number, i: number, j: number) => rowDot(m, d, i, j) / Math.sqrt(rowDot(m, d, i, i) * rowDot(m, d, j, j));
    // Johnson-Lindenstrauss: the error shrinks as 1 - cos^2, so near-duplicate pairs keep their cosine best.
    let errNear = 0;
    let errFar = 0;
    for (let i = 0; i < 199; i++) {
      const e = Math.abs(cos(a, 64, i, i + 1) - rowDot(vectors, dim, i, i + 1));
      if (truth[i] === truth[i + 1]) errNear = Math.max(errNear, e);
      else errFar = Math.max(errFar, e);
    }
    expect(errNear).toBeLessThan(0.05);
    expect(errFar).toBeLessThan(0.4);
  });
});

describe('nearDuplicateClusters', () => {
  it('exact: connected components at the threshold (a chain joins; below threshold does not)', () => {
    // Unit vectors at angles 0, 20, 40 and 120 degrees: cos(20) = 0.94 joins neighbours into a chain.
    const deg = [0, 20, 40, 120].map((a) => (a * Math.PI) / 180);
    const v = Float32Array.from(deg.flatMap((a) => [Math.cos(a), Math.sin(a)]));
    const r = nearDuplicateClusters(v, 2, { threshold: 0.92, method: 'exact' });
    expect(r.method).toBe('exact');
    expect(Array.from(r.clusterOf)).toEqual([0, 0, 0, 1]);
    expect(r.count).toBe(2);
    expect(nearDuplicateClusters(v, 2, { threshold: 0.95, method: 'exact' }).count).toBe(4);
  });

  it('ann (HNSW on a random projection) agrees with exact all pairs and with the ground truth', () => {
    const { vectors, dim, truth, clusters } = syntheticClusters(2500, 1280, 5);
    const exact = nearDuplicateClusters(vectors, dim, { threshold: 0.92, method: 'exact' });
    const ann = nearDuplicateClusters(vectors, dim, { threshold: 0.92, method: 'ann', threads: 1 });
    expect(ann.method).toBe('ann');
    expect(exact.count).toBe(clusters);
    expect(clusterAgreement(exact.clusterOf, truth)).toBe(1);
    expect(clusterAgreement(ann.clusterOf, exact.clusterOf)).toBeGreaterThanOrEqual(0.99);
    // ann verifies every edge with the full vectors: it never joins rows exact keeps apart.
    for (let i = 0; i < truth.length; i++)
      for (const j of [i + 1, i + 7]) {
        if (j < truth.length && ann.clusterOf[i] === ann.clusterOf[j]) expect(exact.clusterOf[i]).toBe(exact.clusterOf[j]);
      }
    expect(ann.candidates).toBeLessThan((2500 * 2499) / 2 / 20);
  });

  it('auto picks exact for small inputs and ann for large ones', () => {
    const small = syntheticClusters(50, 32, 1);
    expect(nearDuplicateClusters(small.vectors, 32, { threshold: 0.9 }).method).toBe('exact');
    expect(nearDuplicateClusters(small.vectors, 32, { threshold: 0.9, exactMaxRows: 10 }).method).toBe('ann');
    expect(nearDuplicateClusters(new Float32Array(0), 32, { threshold: 0.9 }).count).toBe(0);
  });

  it('rejects a bad shape or threshold', () => {
    expect(() => nearDuplicateClusters(new Float32Array(5), 2, { threshold: 0.9 })).toThrow(InvalidInputError);
    expect(() => nearDuplicateClusters(new Float32Array(4), 2, { threshold: 2 })).toThrow(InvalidInputError);
  });
});
