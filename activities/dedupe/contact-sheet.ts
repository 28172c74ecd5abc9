/**
 * Contact sheets: one JPEG per label that shows a person at a glance what dedupe kept and
 * what it merged.
 */
import sharp, { type OverlayOptions } from 'sharp';
import type { ObjectStore } from '../../lib/s3';

/** What a contact sheet needs of a cluster (a subset of `DedupeCluster`). */
export interface SheetCluster {
  representative: string;
  members: string[];
  toLabel: boolean;
  seenAs?: string;
}

/** Layout of a contact sheet. */
export const SHEET = { thumbW: 128, thumbH: 96, gap: 4, columns: 12, maxRepresentatives: 96, mergedClusters: 4, membersPerCluster: 11 } as const;

const COLOURS = {
  toLabel: { r: 40, g: 200, b: 60 }, // green: new representative sent to labelling
  seen: { r: 60, g: 120, b: 230 }, // blue: content an earlier run already had
  kept: { r: 150, g: 150, b: 150 }, // grey: new, left out by the label budget
  member: { r: 30, g: 30, b: 30 },
  background: { r: 255, g: 255, b: 255 },
};

/**
 * Compose a contact sheet and store it as a JPEG at `key`.
 *
 * Top: up to 96 representatives, 12 per row, biggest clusters first, each framed in
 * green (goes to labelling), blue (seen in an earlier run) or grey (left out by the
 * budget). Below, one row per merged cluster (the 4 biggest with more than one member):
 * its representative, then up to 11 of its members. Thumbnails are 128 x 96 (cover crop).
 * A missing frame leaves a blank cell.
 *
 * @returns the S3 key and the image size in pixels.
 */
export async function writeContactSheet(
  store: ObjectStore,
  key: string,
  clusters: SheetCluster[],
  title: string,
): Promise<{ key: string; width: number; height: number }> {
  const { thumbW, thumbH, gap, columns } = SHEET;
  const bySize = [...clusters].sort((a, b) => b.members.length - a.members.length);
  const reps = bySize.slice(0, SHEET.maxRepresentatives);
  const merged = bySize.filter((c) => c.members.length > 1).slice(0, SHEET.mergedClusters);
  const repRows = Math.ceil(reps.length / columns);
  const rows = repRows + merged.length;
  const cell = (col: number, row: number) => ({ left: gap + col * (thumbW + gap), top: gap + 24 + row * (thumbH + gap) });
  const width = gap + columns * (thumbW + gap);
  const height = 24 + gap + Math.max(1, rows) * (thumbH + gap);
  const thumb = async (frameKey: string, border: { r: number; g: number; b: number }, line: number) => {
    const img = await store.get(frameKey);
    if (!img) return undefined;
    const inner = await sharp(img)
      .resize(thumbW - 2 * line, thumbH - 2 * line, { fit: 'cover' })
      .toBuffer();
    return sharp(inner).extend({ top: line, bottom: line, left: line, right: line, background: border }).png().toBuffer();
  };
  const layers: OverlayOptions[] = [];
  const place = async (frameKey: string, col: number, row: number, border: { r: number; g: number; b: number }, line: number) => {
    const t = await thumb(frameKey, border, line);
    if (t) layers.push({ input: t, ...cell(col, row) });
  };
  for (let i = 0; i < reps.length; i++) {
    const c = reps[i]!;
    await place(c.representative, i % columns, Math.floor(i / columns), c.toLabel ? COLOURS.toLabel : c.seenAs ? COLOURS.seen : COLOURS.kept, 4);
  }
  for (let j = 0; j < merged.length; j++) {
    const c = merged[j]!;
    const row = repRows + j;
    await place(c.representative, 0, row, c.toLabel ? COLOURS.toLabel : c.seenAs ? COLOURS.seen : COLOURS.kept, 4);
    const others = c.members.filter((m) => m !== c.representative).slice(0, SHEET.membersPerCluster);
    for (let k = 0; k < others.length; k++) await place(others[k]!, k + 1, row, COLOURS.member, 1);
  }
  const esc = (s: string) => s.replace(/[<>&"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
  const caption =
    `<svg width="${width}" height="${height}"><text x="${gap}" y="17" font-family="sans-serif" font-size="14">` +
    `${esc(title)}: ${clusters.length} clusters (green: to label, blue: seen before, grey: over budget)` +
    (merged.length ? `; below: ${merged.length} merged clusters, representative first` : '') +
    `</text></svg>`;
  layers.unshift({ input: Buffer.from(caption), left: 0, top: 0 });
  const jpeg = await sharp({ create: { width, height, channels: 3, background: COLOURS.background } })
    .composite(layers)
    .jpeg({ quality: 80 })
    .toBuffer();
  await store.put(key, jpeg, 'image/jpeg');
  return { key, width, height };
}
