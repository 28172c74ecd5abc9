import { cohenKappa, firstPair, latestPerPerson, resolveVotes, type Vote } from '../../domain/agreement';

const v = (annotator: string, label: string | null, t: number, id = t): Vote => ({
  annotator,
  label,
  updatedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, t)).toISOString(),
  annotationId: id,
});

describe('cohenKappa', () => {
  it('matches the textbook 2x2 example (po 0.7, pe 0.5 -> 0.4)', () => {
    const pairs: Array<[string, string]> = [
      ...Array.from({ length: 20 }, () => ['yes', 'yes'] as [string, string]),
      ...Array.from({ length: 5 }, () => ['yes', 'no'] as [string, string]),
      ...Array.from({ length: 10 }, () => ['no', 'yes'] as [string, string]),
      ...Array.from({ length: 15 }, () => ['no', 'no'] as [string, string]),
    ];
    const k = cohenKappa(pairs);
    expect(k.pairs).toBe(50);
    expect(k.agreement).toBeCloseTo(0.7, 12);
    expect(k.kappa).toBeCloseTo(0.4, 12);
    expect(k.disagreements).toBe(15);
  });

  it('is 1 for perfect agreement over several categories, 0 at chance, undefined for one category or no pairs', () => {
    expect(
      cohenKappa([
        ['a', 'a'],
        ['b', 'b'],
        ['c', 'c'],
      ]).kappa,
    ).toBeCloseTo(1, 12);
    // Each rater says a and b equally often, independently: po = pe = 0.5.
    expect(
      cohenKappa([
        ['a', 'a'],
        ['a', 'b'],
        ['b', 'a'],
        ['b', 'b'],
      ]).kappa,
    ).toBeCloseTo(0, 12);
    expect(
      cohenKappa([
        ['a', 'a'],
        ['a', 'a'],
      ]),
    ).toEqual({ pairs: 2, agreement: 1, kappa: null, disagreements: 0 });
    expect(cohenKappa([])).toEqual({ pairs: 0, agreement: null, kappa: null, disagreements: 0 });
  });

  it('can be negative (systematic disagreement)', () => {
    expect(
      cohenKappa([
        ['a', 'b'],
        ['b', 'a'],
      ]).kappa,
    ).toBeCloseTo(-1, 12);
  });
});

describe('resolveVotes', () => {
  it('one person is enough for a training frame', () => {
    expect(resolveVotes([v('ann', 'cup', 1)], 1)).toEqual({ status: 'agreed', label: 'cup', people: 1 });
  });

  it('a validation frame waits for its second person, and says what the first said', () => {
    expect(resolveVotes([v('ann', 'cup', 1)], 2)).toEqual({ status: 'pending', people: 1, partial: { label: 'cup' } });
    expect(resolveVotes([], 2)).toEqual({ status: 'pending', people: 0, partial: null });
  });

  it('two people: agreement, or a disagreement without a majority; a third decides', () => {
    expect(resolveVotes([v('a', 'cup', 1), v('b', 'cup', 2)], 2)).toMatchObject({ status: 'agreed', label: 'cup' });
    expect(resolveVotes([v('a', 'cup', 1), v('b', 'other', 2)], 2)).toEqual({ status: 'disagreed', labels: ['cup', 'other'], people: 2 });
    expect(resolveVotes([v('a', 'cup', 1), v('b', 'other', 2)], 3)).toMatchObject({ status: 'pending', partial: { disagreed: ['cup', 'other'] } });
    expect(resolveVotes([v('a', 'cup', 1), v('b', 'other', 2), v('c', 'other', 3)], 3)).toMatchObject({ status: 'agreed', label: 'other', people: 3 });
    expect(resolveVotes([v('a', 'cup', 1), v('b', 'other', 2), v('c', 'dog', 3)], 3)).toMatchObject({ status: 'disagreed', labels: ['cup', 'dog', 'other'] });
  });

  it('a person counts once, with their latest annotation; skipped annotations give no label', () => {
    expect(resolveVotes([v('a', 'cup', 1), v('a', 'other', 5)], 2)).toMatchObject({ status: 'pending', people: 1, partial: { label: 'other' } });
    expect(resolveVotes([v('a', null, 1), v('b', null, 2)], 2)).toEqual({ status: 'skipped', people: 2 });
    // One skipped, one labelled: the label is a majority of the labels given.
    expect(resolveVotes([v('a', null, 1), v('b', 'cup', 2)], 2)).toMatchObject({ status: 'agreed', label: 'cup' });
  });

  it('firstPair takes the first two people who gave a label, by time', () => {
    expect(firstPair([v('b', 'x', 3), v('a', 'y', 1), v('c', 'z', 5)])).toEqual(['y', 'x']);
    expect(firstPair([v('a', 'y', 1), v('b', null, 2)])).toBeUndefined();
    expect(latestPerPerson([v('a', 'x', 1), v('a', 'y', 2)]).map((x) => x.label)).toEqual(['y']);
  });
});
