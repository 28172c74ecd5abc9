import type { Pool } from 'pg';
import type { ObjectStore } from './s3';

/** S3 prefix of one workflow run: `runs/<workflowId>` (characters outside [A-Za-z0-9._-] become `_`). */
export function runPrefix(workflowId: string): string {
  return `runs/${workflowId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** S3 key of a step's result manifest: `runs/<workflowId>/<step>/manifest.json`. */
export function stepManifestKey(workflowId: string, step: string): string {
  return `${runPrefix(workflowId)}/${step}/manifest.json`;
}

/** What every step manifest holds besides its own payload. */
export interface StepManifest<S> {
  step: string;
  workflowId: string;
  /** Small summary returned to the workflow (counts, keys). */
  summary: S;
  finishedAt: string;
  durationMs: number;
}

/** A step's summary plus where its manifest is and whether it was reused. */
export type StepResult<S> = S & { manifestKey: string; reused: boolean; durationMs: number };

/**
 * Run a pipeline step at most once per workflow run: the checkpoint-and-resume rule.
 *
 * When `runs/<workflowId>/<step>/manifest.json` exists, its summary is returned and
 * `compute` is not called. Otherwise `compute` runs, its manifest (summary plus
 * `extra`) is written to S3 first and the `run_steps` row second; a crash between the
 * two is repaired by the next attempt, which finds the manifest and writes the row.
 *
 * @returns the step's summary with `manifestKey`, `reused` and `durationMs`.
 */
export async function runStep<S extends object>(
  deps: { store: ObjectStore; pool: Pool },
  workflowId: string,
  step: string,
  compute: () => Promise<{ summary: S; extra?: Record<string, unknown> }>,
): Promise<StepResult<S>> {
  const key = stepManifestKey(workflowId, step);
  let manifest = await deps.store.getJson<StepManifest<S>>(key);
  let reused = true;
  if (!manifest) {
    reused = false;
    const started = Date.now();
    const out = await compute();
    manifest = {
      step,
      workflowId,
      summary: out.summary,
      finishedAt: new Date().toISOString(),
      durationMs: Date.now() - started,
      ...out.extra,
    };
    await deps.store.putJson(key, manifest);
  }
  await deps.pool.query(
    `INSERT INTO run_steps (workflow_id, step, manifest_key, summary, duration_ms) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (workflow_id, step) DO UPDATE SET manifest_key = EXCLUDED.manifest_key, summary = EXCLUDED.summary,
       duration_ms = EXCLUDED.duration_ms`,
    [workflowId, step, key, JSON.stringify(manifest.summary), manifest.durationMs],
  );
  return { ...manifest.summary, manifestKey: key, reused, durationMs: manifest.durationMs };
}

/** Read a finished step's whole manifest; throws when the step has not run. */
export async function readStepManifest<M>(store: ObjectStore, workflowId: string, step: string): Promise<M> {
  const key = stepManifestKey(workflowId, step);
  const m = await store.getJson<M>(key);
  if (!m) throw new Error(`step manifest missing: ${store.uri(key)} (has step "${step}" run?)`);
  return m;
}
