/**
 * How several people's labels of one frame become one label, and how much two people
 * agree (Cohen's kappa). Pure functions, used by the labelling activities (progress,
 * the final labels) and the dataset step (human labels over weak ones).
 */
import type { Agreement } from '../contracts';

/** One person's annotation of a frame: `label` is null when they skipped it or submitted no choice. */
export interface Vote {
  annotator: string;
  label: string | null;
  /** ISO 8601 time of the annotation's last change (orders the votes: the first two people are the pair). */
  updatedAt: string;
  annotationId: number;
}

/**
 * What the votes of one frame say, given how many distinct people it needs:
 * - `pending`: fewer people than `required` have annotated;
 * - `agreed`: a strict majority of the labels given is `label` (one label is a majority of one);
 * - `disagreed`: labels were given but none has a strict majority (two people, two labels);
 * - `skipped`: enough people annotated but none gave a label.
 * `partial` (with `pending`) is what the people who did annotate say, for a frame the
 * run stops waiting for: their majority label, if any.
 */
export type Resolution =
  | { status: 'pending'; people: number; partial: { label: string } | { disagreed: string[] } | null }
  | { status: 'agreed'; label: string; people: number }
  | { status: 'disagreed'; labels: string[]; people: number }
  | { status: 'skipped'; people: number };

/** The latest vote of each person, oldest first. */
export function latestPerPerson(votes: readonly Vote[]): Vote[] {
  const by = new Map<string, Vote>();
  for (const v of votes) {
    const had = by.get(v.annotator);
    if (!had || had.updatedAt < v.updatedAt || (had.updatedAt === v.updatedAt && had.annotationId < v.annotationId)) by.set(v.annotator, v);
  }
  return [...by.values()].sort((a, b) => (a.updatedAt < b.updatedAt ? -1 : a.updatedAt > b.updatedAt ? 1 : a.annotationId - b.annotationId));
}

function majority(labels: string[]): { label: string } | { disagreed: string[] } | null {
  if (labels.length === 0) return null;
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  const [top, n] = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!;
  return 2 * n > labels.length ? { label: top } : { disagreed: [...counts.keys()].sort() };
}

/**
 * Resolve one frame's votes: each person counts once (their latest annotation), a label
 * needs a strict majority of the labels given.
 *
 * @param votes every annotation of the frame, any order.
 * @param required distinct people the frame needs (1 for training frames, 2 for validation ones, 3 after a disagreement).
 */
export function resolveVotes(votes: readonly Vote[], required: number): Resolution {
  const people = latestPerPerson(votes);
  const labels = people.map((v) => v.label).filter((l): l is string => l !== null);
  const m = majority(labels);
  if (people.length < required) return { status: 'pending', people: people.length, partial: m };
  if (m === null) return { status: 'skipped', people: people.length };
  if ('label' in m) return { status: 'agreed', label: m.label, people: people.length };
  return { status: 'disagreed', labels: m.disagreed, people: people.length };
}

/**
 * Agreement of two raters over paired labels: the share of equal pairs and Cohen's kappa
 * `(p_o - p_e) / (1 - p_e)`, where `p_e = sum_c p_A(c) p_B(c)` from each rater's own
 * label frequencies (Cohen 1960, "A coefficient of agreement for nominal scales").
 * Here rater A is the first person to label a frame and rater B the second, so the pairs
 * may come from many people; kappa is then the chance-corrected agreement of "a first
 * and a second opinion".
 *
 * @param pairs `[first, second]` labels of each frame both labelled.
 * @returns kappa `null` when undefined (no pairs, or both raters always gave one and the same category: p_e = 1).
 */
export function cohenKappa(pairs: ReadonlyArray<readonly [string, string]>): Agreement {
  const n = pairs.length;
  if (n === 0) return { pairs: 0, agreement: null, kappa: null, disagreements: 0 };
  const a = new Map<string, number>();
  const b = new Map<string, number>();
  let same = 0;
  for (const [x, y] of pairs) {
    if (x === y) same++;
    a.set(x, (a.get(x) ?? 0) + 1);
    b.set(y, (b.get(y) ?? 0) + 1);
  }
  const po = same / n;
  let pe = 0;
  for (const [c, na] of a) pe += (na / n) * ((b.get(c) ?? 0) / n);
  const kappa = pe >= 1 - 1e-12 ? null : (po - pe) / (1 - pe);
  return { pairs: n, agreement: po, kappa, disagreements: n - same };
}

/** The `[first, second]` labels of a frame: the first two people (by time) who gave a label; undefined with fewer than two. */
export function firstPair(votes: readonly Vote[]): [string, string] | undefined {
  const labelled = latestPerPerson(votes).filter((v) => v.label !== null);
  return labelled.length >= 2 ? [labelled[0]!.label!, labelled[1]!.label!] : undefined;
}
