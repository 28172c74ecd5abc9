import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { CatalogError } from '../../contracts';
import { exclusionProblems } from '../../domain/taxonomy';

/** One entry of a catalog file (the format of `../shared/data/catalog.json`). */
export const CatalogEntry = z.object({
  /** Stable id, e.g. "vtest"; letters, digits, `_`, `-`, `.`. */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, "_", "-", "." only'),
  /** Path of the file, relative to the catalog file. */
  file: z.string().min(1),
  /** Expected sha256 of the file; checked on ingest when given. */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  bytes: z.number().int().nonnegative().optional(),
  labels: z.array(z.string().trim().toLowerCase().min(1)).default([]),
  description: z.string().default(''),
  video: z
    .object({
      codec: z.string().optional(),
      width: z.number().int().positive().optional(),
      height: z.number().int().positive().optional(),
      avg_frame_rate: z.string().optional(),
      duration_s: z.number().nonnegative().optional(),
      has_audio: z.boolean().optional(),
    })
    .partial()
    .optional(),
  source: z.record(z.string(), z.unknown()).optional(),
});
export type CatalogEntry = z.infer<typeof CatalogEntry>;

/**
 * A taxonomy entry: label, its parent, its synonyms, and the labels it excludes (a frame of
 * this label cannot show them; symmetric, inherited by descendants: see `domain/taxonomy.ts`).
 */
export const TaxonomyEntry = z.object({
  name: z.string().trim().toLowerCase().min(1),
  parent: z.string().trim().toLowerCase().min(1).nullable().default(null),
  synonyms: z.array(z.string().trim().toLowerCase().min(1)).default([]),
  /** Labels a frame of this one cannot show (default none). Never itself, an ancestor or a descendant. */
  excludes: z.array(z.string().trim().toLowerCase().min(1)).default([]),
});
export type TaxonomyEntry = z.infer<typeof TaxonomyEntry>;

/** A catalog entry with its absolute file path resolved. */
export interface ResolvedEntry extends CatalogEntry {
  absPath: string;
}

/**
 * Read and validate a catalog file (a JSON array of {@link CatalogEntry}).
 *
 * @throws CatalogError naming the file, the entry index and id, and the field that is wrong;
 *   or duplicate ids.
 */
export async function readCatalogFile(catalogPath: string): Promise<ResolvedEntry[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(catalogPath, 'utf8'));
  } catch (err) {
    throw new CatalogError(`${catalogPath}: cannot read catalog JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new CatalogError(`${catalogPath}: expected a JSON array of entries`);
  const dir = path.dirname(path.resolve(catalogPath));
  const seen = new Set<string>();
  return raw.map((item, i) => {
    const parsed = CatalogEntry.safeParse(item);
    if (!parsed.success) {
      const id = (item as { id?: unknown })?.id;
      const issue = parsed.error.issues[0]!;
      throw new CatalogError(
        `${catalogPath}: entry ${i}${typeof id === 'string' ? ` (id ${JSON.stringify(id)})` : ''}: field "${issue.path.join('.')}": ${issue.message}`,
      );
    }
    if (seen.has(parsed.data.id)) throw new CatalogError(`${catalogPath}: entry ${i}: duplicate id ${JSON.stringify(parsed.data.id)}`);
    seen.add(parsed.data.id);
    return { ...parsed.data, absPath: path.resolve(dir, parsed.data.file) };
  });
}

/** File extensions taken as videos in folders and S3 prefixes (lower case, with the dot). */
export const VIDEO_EXTENSIONS = new Set(['.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv', '.3gp']);

/**
 * Turn a plain folder of videos into catalog entries: id from the file name, the given
 * labels on every file, the title from the file name.
 */
export async function catalogFromFolder(dir: string, labels: string[] = []): Promise<ResolvedEntry[]> {
  const names = (await fs.readdir(dir)).filter((n) => VIDEO_EXTENSIONS.has(path.extname(n).toLowerCase())).sort();
  return names
    .map((name) => {
      const stem = path.basename(name, path.extname(name));
      const id = stem.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '') || 'video';
      return CatalogEntry.parse({ id, file: name, labels, description: stem }) as ResolvedEntry;
    })
    .map((e) => ({ ...e, absPath: path.join(dir, e.file) }));
}

/**
 * Read a taxonomy file: a JSON array of {@link TaxonomyEntry}.
 *
 * @throws CatalogError naming the file, the entry and the field; or an exclusion of a
 *   label's own line (itself, an ancestor, a descendant), named.
 */
export async function readTaxonomyFile(file: string): Promise<TaxonomyEntry[]> {
  const raw = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
  if (!Array.isArray(raw)) throw new CatalogError(`${file}: expected a JSON array`);
  const entries = raw.map((item, i) => {
    const parsed = TaxonomyEntry.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new CatalogError(`${file}: entry ${i}: field "${issue.path.join('.')}": ${issue.message}`);
    }
    return parsed.data;
  });
  const problems = exclusionProblems(entries);
  if (problems.length) throw new CatalogError(`${file}: field "excludes": ${problems.join('; ')}`);
  return entries;
}
