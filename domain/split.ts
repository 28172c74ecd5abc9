import { createHash } from 'node:crypto';
import type { Split } from '../contracts';

/**
 * Split videos into train and validation, per label, by video (never by frame), so no
 * frame of a validation video is trained on.
 *
 * Each label's videos are ordered by sha256(seed, video id) and the first
 * `round(n * fraction)` go to validation, at least one and at most n-1 when a label has
 * two or more videos; a label with one video keeps it in train (and is reported).
 * Deterministic for the same seed and videos; adding a video moves no other video.
 *
 * @param videos each video once, with the label of its frames.
 * @returns the split of each video id, and the labels left without a validation video.
 */
export function splitByVideo(
  videos: Array<{ videoId: string; label: string }>,
  fraction: number,
  seed: number,
): { splitOf: Map<string, Split>; labelsWithoutValidation: string[] } {
  const byLabel = new Map<string, string[]>();
  for (const v of videos) byLabel.set(v.label, [...(byLabel.get(v.label) ?? []), v.videoId]);
  const splitOf = new Map<string, Split>();
  const labelsWithoutValidation: string[] = [];
  const rank = (id: string) => createHash('sha256').update(`${seed}:${id}`).digest('hex');
  for (const [label, ids] of [...byLabel.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const sorted = [...new Set(ids)].sort((a, b) => rank(a).localeCompare(rank(b)));
    let nVal = Math.round(sorted.length * fraction);
    if (sorted.length >= 2 && fraction > 0) nVal = Math.min(Math.max(nVal, 1), sorted.length - 1);
    else nVal = 0;
    if (nVal === 0) labelsWithoutValidation.push(label);
    sorted.forEach((id, i) => splitOf.set(id, i < nVal ? 'validation' : 'train'));
  }
  return { splitOf, labelsWithoutValidation };
}

/**
 * Each video's majority label: the label most of its frames carry (ties broken by label
 * name, so the result is deterministic). The input of {@link splitByVideo} when a video's
 * frames carry several labels (people label frames, not videos).
 *
 * @param frames one entry per frame.
 * @returns one entry per video, in first-seen order.
 */
export function majorityLabelByVideo(frames: Iterable<{ videoId: string; label: string }>): Array<{ videoId: string; label: string }> {
  const votes = new Map<string, Map<string, number>>();
  for (const f of frames) {
    const m = votes.get(f.videoId) ?? new Map<string, number>();
    m.set(f.label, (m.get(f.label) ?? 0) + 1);
    votes.set(f.videoId, m);
  }
  return [...votes.entries()].map(([videoId, m]) => ({
    videoId,
    label: [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]![0],
  }));
}
