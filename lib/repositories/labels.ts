/**
 * `labels`: the label taxonomy (one row per label: parent, synonyms, declared exclusions).
 * The only place its SQL is written (docs/architecture.md, "Postgres: one owner per table").
 * Every function runs on a pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** One row of `labels`, as the taxonomy reads it. */
export interface LabelRow {
  name: string;
  /** Parent label, or null for a root. */
  parent: string | null;
  synonyms: string[];
  /** Labels this one excludes, as declared. */
  excludes: string[];
}

/** A label (or a synonym's label) with its synonyms. */
export interface LabelSynonyms {
  name: string;
  synonyms: string[];
}

/** Every label (the table is small: one row per label). */
export async function all(db: Queryable): Promise<LabelRow[]> {
  const r = await db.query<LabelRow>('SELECT name, parent, synonyms, excludes FROM labels');
  return r.rows;
}

/** Create a bare label (no parent, synonyms or exclusions) when it does not exist; an existing one is left alone. */
export async function ensure(db: Queryable, name: string): Promise<void> {
  await db.query('INSERT INTO labels (name) VALUES ($1) ON CONFLICT DO NOTHING', [name]);
}

/**
 * Create or update a label from a taxonomy entry: parent, synonyms and exclusions are
 * replaced by the entry's; an unchanged row is not written. The parent must exist
 * ({@link ensure} it first).
 *
 * @param entry.excludes written as given (the caller sorts and deduplicates).
 */
export async function upsertEntry(db: Queryable, entry: { name: string; parent: string | null; synonyms: string[]; excludes: string[] }): Promise<void> {
  await db.query(
    `INSERT INTO labels (name, parent, synonyms, excludes) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET parent = EXCLUDED.parent, synonyms = EXCLUDED.synonyms, excludes = EXCLUDED.excludes
     WHERE labels.parent IS DISTINCT FROM EXCLUDED.parent OR labels.synonyms IS DISTINCT FROM EXCLUDED.synonyms
        OR labels.excludes IS DISTINCT FROM EXCLUDED.excludes`,
    [entry.name, entry.parent, entry.synonyms, entry.excludes],
  );
}

/**
 * The label a term names: the label of that name, else the label that has it as a synonym.
 *
 * @param term lower case, trimmed.
 * @returns undefined when no label has that name or synonym.
 */
export async function canonicalName(db: Queryable, term: string): Promise<string | undefined> {
  const r = await db.query<{ name: string }>('SELECT name FROM labels WHERE name = $1 OR $1 = ANY(synonyms) ORDER BY (name = $1) DESC LIMIT 1', [term]);
  return r.rows[0]?.name;
}

/**
 * The label and every descendant (children, their children...), each with its synonyms
 * (empty for a label with no row), in no particular order. The label is always included.
 */
export async function selfAndDescendants(db: Queryable, label: string): Promise<LabelSynonyms[]> {
  const r = await db.query<LabelSynonyms>(
    `WITH RECURSIVE d(name) AS (SELECT $1::text UNION SELECT l.name FROM labels l JOIN d ON l.parent = d.name)
     SELECT d.name, coalesce(l.synonyms, '{}') AS synonyms FROM d LEFT JOIN labels l ON l.name = d.name`,
    [label],
  );
  return r.rows;
}

/** The label's ancestors (parent, grandparent...; at most 32 levels), in no particular order. */
export async function ancestors(db: Queryable, label: string): Promise<string[]> {
  const r = await db.query<{ name: string }>(
    `WITH RECURSIVE a(name, depth) AS (SELECT parent, 1 FROM labels WHERE name = $1 AND parent IS NOT NULL
       UNION SELECT l.parent, a.depth + 1 FROM labels l JOIN a ON l.name = a.name WHERE l.parent IS NOT NULL AND a.depth < 32)
     SELECT name FROM a`,
    [label],
  );
  return r.rows.map((x) => x.name);
}

/**
 * The label's path in the taxonomy, root first, the label last (e.g. `['animal', 'dog']`;
 * at most 33 labels).
 *
 * @returns empty when the label has no row.
 */
export async function pathFromRoot(db: Queryable, label: string): Promise<string[]> {
  const r = await db.query<{ name: string }>(
    `WITH RECURSIVE a(name, parent, depth) AS (SELECT name, parent, 0 FROM labels WHERE name = $1
       UNION SELECT l.name, l.parent, a.depth + 1 FROM labels l JOIN a ON l.name = a.parent WHERE a.depth < 32)
     SELECT name FROM a ORDER BY depth DESC`,
    [label],
  );
  return r.rows.map((x) => x.name);
}

/** The synonyms of a label; undefined when it has no row. */
export async function synonymsOf(db: Queryable, label: string): Promise<string[] | undefined> {
  const r = await db.query<{ synonyms: string[] }>('SELECT synonyms FROM labels WHERE name = $1', [label]);
  return r.rows[0]?.synonyms;
}

/** The label's children (direct only) with their synonyms, by name. */
export async function childrenOf(db: Queryable, label: string): Promise<LabelSynonyms[]> {
  const r = await db.query<LabelSynonyms>('SELECT name, synonyms FROM labels WHERE parent = $1 ORDER BY name', [label]);
  return r.rows;
}
