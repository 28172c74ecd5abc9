import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import type { SearchHit } from '../contracts';
import { repos } from '../lib/repositories';

/** The label resolved through the taxonomy. */
export interface ResolvedLabel {
  /** Canonical label name (a synonym resolves to its label). */
  label: string;
  /** The label, its synonyms and every descendant label with their synonyms. */
  terms: string[];
  /** The label and its descendants. */
  labels: string[];
  /** Ancestors of the label: videos carrying only these may show it, so they are never negatives. */
  ancestors: string[];
}

/**
 * Resolve a label through the taxonomy: synonyms map to their label; descendants
 * (dog under animal) count as matches. A label unknown to the taxonomy resolves to itself.
 */
export async function resolveLabel(pool: Pool, query: string): Promise<ResolvedLabel> {
  const q = query.trim().toLowerCase();
  const label = (await repos.labels.canonicalName(pool, q)) ?? q;
  const desc = await repos.labels.selfAndDescendants(pool, label);
  const ancestors = await repos.labels.ancestors(pool, label);
  const labels = desc.map((r) => r.name);
  const terms = [...new Set([q, ...labels, ...desc.flatMap((r) => r.synonyms)])];
  return { label, terms, labels, ancestors };
}

/**
 * Search the catalog for a label.
 *
 * Positives: videos carrying the label, one of its descendants, or whose title
 * (description) contains the label or a synonym as a word. Negatives: a deterministic
 * sample (ordered by sha256(seed, label, video sha256)) of the other videos that carry
 * at least one label and none of the label's ancestors; unlabelled videos are never
 * negatives, since nobody said what they show.
 */
export async function searchCatalog(
  pool: Pool,
  q: { label: string; maxPositiveVideos: number; maxNegativeVideos: number; seed: number },
): Promise<{ resolved: ResolvedLabel; hits: SearchHit[] }> {
  const resolved = await resolveLabel(pool, q.label);
  const rows = await repos.videos.catalogWithLabels(pool);
  const labelSet = new Set(resolved.labels);
  const ancestorSet = new Set(resolved.ancestors);
  const termRes = resolved.terms.map((t) => new RegExp(`(^|[^a-z0-9])${t.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}($|[^a-z0-9])`, 'i'));
  const order = (sha: string) => createHash('sha256').update(`${q.seed}:${resolved.label}:${sha}`).digest('hex');

  const positives: SearchHit[] = [];
  const others: SearchHit[] = [];
  for (const r of rows) {
    const base = { videoId: r.id, sha256: r.sha256, s3Key: r.s3_key, fileName: r.file_name, labels: r.labels };
    let matchedBy: string | undefined;
    if (r.labels.includes(resolved.label)) matchedBy = 'label';
    else if (r.labels.some((l) => labelSet.has(l))) matchedBy = 'descendant';
    else if (termRes.some((re) => re.test(r.title))) matchedBy = 'title';
    if (matchedBy) positives.push({ ...base, role: 'positive', matchedBy });
    else if (r.labels.length > 0 && !r.labels.some((l) => ancestorSet.has(l))) others.push({ ...base, role: 'negative' });
  }
  const rank = { label: 0, descendant: 1, title: 2 } as Record<string, number>;
  positives.sort((a, b) => rank[a.matchedBy!]! - rank[b.matchedBy!]! || order(a.sha256).localeCompare(order(b.sha256)));
  others.sort((a, b) => order(a.sha256).localeCompare(order(b.sha256)));
  return { resolved, hits: [...positives.slice(0, q.maxPositiveVideos), ...others.slice(0, q.maxNegativeVideos)] };
}
