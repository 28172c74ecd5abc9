/**
 * The label taxonomy as the labelling, dedupe and dataset code reads it: parents,
 * synonyms and **exclusions** (`labels` rows, from `infra/taxonomy.json` through ingest).
 *
 * An exclusion says that a frame showing one label cannot show the other (`office` and
 * `street`: an indoor scene is not an outdoor one). It is what lets one label's labels say
 * anything of another's: a positive of `street` is evidence of `other` for `office`, and
 * nothing else crosses between labels (`other` never does). Exclusions are declared on
 * either side (`"excludes": ["street"]` on `office`) and hold both ways; a descendant
 * inherits every exclusion of its ancestors, on both sides (`office` excludes every kind
 * of `street`, and a kind of `office` excludes `street`).
 *
 * {@link Taxonomy} is pure (unit-tested); {@link loadTaxonomy} reads it from Postgres.
 */
import type { Pool } from 'pg';
import { repos } from '../lib/repositories';

/** One label of the taxonomy, as stored in `labels`. */
export interface TaxonomyNode {
  name: string;
  /** Parent label, or null for a root. */
  parent: string | null;
  synonyms: string[];
  /** Labels this one excludes, as declared (the relation is made symmetric and inherited by {@link Taxonomy}). */
  excludes: string[];
}

/** Deepest parent chain followed (a cycle in bad data stops there instead of looping). */
const MAX_DEPTH = 32;

/**
 * A taxonomy held in memory: ancestors, descendants, synonyms and the exclusion relation.
 *
 * Labels unknown to the taxonomy are their own single-label family with no ancestor, no
 * synonym and no exclusion. Lookups are by canonical name; {@link canonical} resolves a
 * synonym first.
 */
export class Taxonomy {
  private readonly byName = new Map<string, TaxonomyNode>();
  private readonly childrenOf = new Map<string, string[]>();
  private readonly bySynonym = new Map<string, string>();
  /** Declared exclusions made symmetric: name -> names. */
  private readonly declared = new Map<string, Set<string>>();

  /** @param nodes every label (order does not matter; a parent missing from `nodes` is treated as a root label of its own). */
  constructor(nodes: readonly TaxonomyNode[]) {
    for (const n of nodes) this.byName.set(n.name, n);
    for (const n of nodes) {
      if (n.parent) this.childrenOf.set(n.parent, [...(this.childrenOf.get(n.parent) ?? []), n.name]);
      for (const s of n.synonyms) if (!this.byName.has(s) && !this.bySynonym.has(s)) this.bySynonym.set(s, n.name);
      for (const x of n.excludes) {
        if (x === n.name) continue;
        this.declared.set(n.name, new Set([...(this.declared.get(n.name) ?? []), x]));
        this.declared.set(x, new Set([...(this.declared.get(x) ?? []), n.name]));
      }
    }
  }

  /** The canonical label of a name or synonym (itself when unknown). */
  canonical(name: string): string {
    return this.byName.has(name) ? name : (this.bySynonym.get(name) ?? name);
  }

  /** The label's synonyms (empty when unknown). */
  synonymsOf(label: string): string[] {
    return this.byName.get(label)?.synonyms ?? [];
  }

  /** The label and its ancestors, the label first, root last. */
  ancestorsOrSelf(label: string): string[] {
    const out = [label];
    let p = this.byName.get(label)?.parent ?? null;
    while (p !== null && out.length <= MAX_DEPTH && !out.includes(p)) {
      out.push(p);
      p = this.byName.get(p)?.parent ?? null;
    }
    return out;
  }

  /** The label's family: the label and every descendant (children, their children, ...), the label first. */
  family(label: string): string[] {
    const out = [label];
    for (let i = 0; i < out.length && out.length < 100_000; i++) {
      for (const c of this.childrenOf.get(out[i]!) ?? []) if (!out.includes(c)) out.push(c);
    }
    return out;
  }

  /**
   * Whether a frame of label `a` cannot be a frame of label `b`: some ancestor-or-self of
   * `a` and some ancestor-or-self of `b` are declared exclusive (either side declared it).
   * Never true of a label and itself, its ancestors or its descendants, nor of `other`.
   */
  excludes(a: string, b: string): boolean {
    const as = this.ancestorsOrSelf(a);
    const bs = this.ancestorsOrSelf(b);
    if (as.includes(b) || bs.includes(a)) return false;
    return as.some((x) => bs.some((y) => this.declared.get(x)?.has(y) ?? false));
  }

  /** Every label of the taxonomy that `label` excludes (see {@link excludes}), sorted. */
  excludedBy(label: string): string[] {
    return [...this.byName.keys()].filter((x) => this.excludes(label, x)).sort();
  }
}

/**
 * Check a taxonomy's declared exclusions: a label may not exclude itself, one of its
 * ancestors or one of its descendants (a kind of a label is that label).
 *
 * @returns one sentence per problem (empty when the exclusions are consistent).
 */
export function exclusionProblems(nodes: readonly TaxonomyNode[]): string[] {
  const t = new Taxonomy(nodes.map((n) => ({ ...n, excludes: [] })));
  const problems: string[] = [];
  for (const n of nodes) {
    for (const x of n.excludes) {
      if (x === n.name) problems.push(`label "${n.name}" excludes itself`);
      else if (t.ancestorsOrSelf(n.name).includes(x)) problems.push(`label "${n.name}" excludes its ancestor "${x}"`);
      else if (t.ancestorsOrSelf(x).includes(n.name)) problems.push(`label "${n.name}" excludes its descendant "${x}"`);
    }
  }
  return problems;
}

/**
 * Read the whole taxonomy (`labels`: name, parent, synonyms, excludes). One query; the
 * table is small (one row per label).
 *
 * @throws the database's error when Postgres cannot be reached (activities retry).
 */
export async function loadTaxonomy(pool: Pool): Promise<Taxonomy> {
  return new Taxonomy(await repos.labels.all(pool));
}
