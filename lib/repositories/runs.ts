/**
 * `runs` and `run_steps`: one row per run of a workflow (new-category, retrain, backfill and
 * its pages, batch predict) and one per finished step of a run. A pair: `run_steps` rows
 * belong to their run (ON DELETE CASCADE) and are only read with it. The only place their
 * SQL is written (docs/architecture.md, "Postgres: one owner per table"). Every function
 * runs on a pool or on a client inside the caller's transaction.
 */
import type { Queryable } from '../db';

/** How a run ended. */
export type RunEnd = 'completed' | 'failed' | 'cancelled';

/** A run's row. */
export interface RunRow {
  kind: string;
  label: string;
  status: 'running' | RunEnd;
  input: unknown;
  /** The run's small result (`{error, type}` for a failed one), JSON; null while running. */
  result: Record<string, unknown> | null;
  started_at: Date | null;
  finished_at: Date | null;
}

/** A finished step of a run. */
export interface RunStepRow {
  step: string;
  /** Milliseconds the step took (null for rows written before it was recorded). */
  duration_ms: number | null;
  finished_at: Date | null;
  summary: Record<string, unknown>;
  /** `runs/<workflowId>/<step>/manifest.json`. */
  manifest_key: string;
}

/**
 * Record the start of a run (idempotent on the workflow id): a new row `running`; a run
 * that failed or was cancelled goes back to `running`; a completed one is left alone.
 *
 * @param run.input stored as JSON.
 * @param run.parentId the run this one is part of (a backfill's page).
 */
export async function recordStart(db: Queryable, run: { workflowId: string; kind: string; label: string; input: unknown; parentId?: string }): Promise<void> {
  await db.query(
    `INSERT INTO runs (workflow_id, kind, label, input, parent_id) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (workflow_id) DO UPDATE SET status = 'running', finished_at = NULL WHERE runs.status <> 'completed'`,
    [run.workflowId, run.kind, run.label, JSON.stringify(run.input), run.parentId ?? null],
  );
}

/** Record the end of a run: its status, result (JSON) and `finished_at` (now). Idempotent. */
export async function recordEnd(db: Queryable, workflowId: string, status: RunEnd, result: unknown): Promise<void> {
  await db.query(`UPDATE runs SET status = $2, result = $3, finished_at = now() WHERE workflow_id = $1`, [workflowId, status, JSON.stringify(result)]);
}

/** End the parts of a run (a backfill's pages) that are still `running` with `status`. */
export async function endRunningParts(db: Queryable, parentId: string, status: RunEnd): Promise<void> {
  await db.query(`UPDATE runs SET status = $2, finished_at = now() WHERE parent_id = $1 AND status = 'running'`, [parentId, status]);
}

/**
 * Record the pages of a backfill as runs of their own (kind `backfill-page`, `parent_id` the
 * backfill, input `{page}` from 0 in list order). Pages already recorded are left alone.
 */
export async function recordBackfillPages(db: Queryable, backfillId: string, label: string, pageIds: readonly string[]): Promise<void> {
  await db.query(
    `INSERT INTO runs (workflow_id, kind, label, input, parent_id)
     SELECT id, 'backfill-page', $2, jsonb_build_object('page', n - 1), $3 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n)
     ON CONFLICT (workflow_id) DO NOTHING`,
    [pageIds, label, backfillId],
  );
}

/** Record a batch predict run (kind `batch-predict`, labelled with the model's label); a recorded one is left alone. */
export async function recordBatchPredict(db: Queryable, workflowId: string, label: string, input: unknown): Promise<void> {
  await db.query(`INSERT INTO runs (workflow_id, kind, label, input) VALUES ($1, 'batch-predict', $2, $3) ON CONFLICT (workflow_id) DO NOTHING`, [
    workflowId,
    label,
    JSON.stringify(input),
  ]);
}

/**
 * Record a finished step (`run_steps`): manifest key, summary (JSON) and duration; a step
 * recorded before (a retried attempt) is overwritten.
 */
export async function recordStep(
  db: Queryable,
  s: { workflowId: string; step: string; manifestKey: string; summary: unknown; durationMs: number },
): Promise<void> {
  await db.query(
    `INSERT INTO run_steps (workflow_id, step, manifest_key, summary, duration_ms) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (workflow_id, step) DO UPDATE SET manifest_key = EXCLUDED.manifest_key, summary = EXCLUDED.summary,
       duration_ms = EXCLUDED.duration_ms`,
    [s.workflowId, s.step, s.manifestKey, JSON.stringify(s.summary), s.durationMs],
  );
}

/** A run's row; undefined when it has none (never started a step). */
export async function get(db: Queryable, workflowId: string): Promise<RunRow | undefined> {
  const r = await db.query<RunRow>('SELECT kind, label, status, input, result, started_at, finished_at FROM runs WHERE workflow_id = $1', [workflowId]);
  return r.rows[0];
}

/** A run's finished steps, in no particular order. */
export async function steps(db: Queryable, workflowId: string): Promise<RunStepRow[]> {
  const r = await db.query<RunStepRow>('SELECT step, duration_ms, finished_at, summary, manifest_key FROM run_steps WHERE workflow_id = $1', [workflowId]);
  return r.rows;
}

/**
 * Workflow ids of a label's runs: runs recorded with the label or one of its synonyms and
 * runs that built a dataset named after it; batch predict runs left out.
 *
 * @param label the canonical label.
 * @returns sorted.
 */
export async function idsOfLabel(db: Queryable, label: string): Promise<string[]> {
  const res = await db.query<{ workflow_id: string }>(
    `SELECT workflow_id FROM runs
      WHERE (label = $1 OR label IN (SELECT unnest(synonyms) FROM labels WHERE name = $1)) AND kind <> 'batch-predict'
     UNION SELECT workflow_id FROM datasets WHERE name = $1 ORDER BY 1`,
    [label],
  );
  return res.rows.map((r) => r.workflow_id);
}

/** Every label that has runs (batch predict runs left out) or datasets, as recorded (synonyms not resolved), once each. */
export async function labelsWithRuns(db: Queryable): Promise<string[]> {
  const r = await db.query<{ label: string }>(`SELECT DISTINCT label FROM runs WHERE kind <> 'batch-predict' UNION SELECT DISTINCT name FROM datasets`);
  return r.rows.map((x) => x.label);
}

/** The latest started new-category or retrain run among `workflowIds` other than `exceptId`, with its input; undefined when none. */
export async function latestPipelineRun(
  db: Queryable,
  workflowIds: readonly string[],
  exceptId: string,
): Promise<{ workflow_id: string; input: unknown } | undefined> {
  const last = await db.query<{ workflow_id: string; input: unknown }>(
    `SELECT workflow_id, input FROM runs WHERE workflow_id = ANY($1::text[]) AND workflow_id <> $2 AND kind IN ('new-category', 'retrain')
      ORDER BY started_at DESC LIMIT 1`,
    [workflowIds, exceptId],
  );
  return last.rows[0];
}

/** Those of `workflowIds` that have a row: `first` first, then the latest started first. */
export async function newestFirst(db: Queryable, workflowIds: readonly string[], first: string): Promise<string[]> {
  const order = await db.query<{ workflow_id: string }>(
    'SELECT workflow_id FROM runs WHERE workflow_id = ANY($1::text[]) ORDER BY (workflow_id = $2) DESC, started_at DESC',
    [workflowIds, first],
  );
  return order.rows.map((r) => r.workflow_id);
}

/** Workflow ids of the runs that are not part of another and whose label matches a POSIX regular expression (benches sweep what they left). */
export async function topLevelIdsOfLabelsMatching(db: Queryable, pattern: string): Promise<string[]> {
  const r = await db.query<{ workflow_id: string }>('SELECT workflow_id FROM runs WHERE label ~ $1 AND parent_id IS NULL', [pattern]);
  return r.rows.map((x) => x.workflow_id);
}

/**
 * Delete runs and their parts (a backfill's pages), with everything that references them
 * (steps, frame labels, label videos, dedupe segments, labelling rows: ON DELETE CASCADE).
 *
 * @throws the foreign-key violation when a dataset or model row references one of them.
 */
export async function removeWithParts(db: Queryable, workflowIds: readonly string[]): Promise<void> {
  await db.query('DELETE FROM runs WHERE workflow_id = ANY($1::text[]) OR parent_id = ANY($1::text[])', [workflowIds]);
}

/** Delete the runs whose workflow id matches a LIKE pattern (benches: `bench-embed-%`), as {@link removeWithParts} does. */
export async function removeLike(db: Queryable, pattern: string): Promise<void> {
  await db.query('DELETE FROM runs WHERE workflow_id LIKE $1', [pattern]);
}
