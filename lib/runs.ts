/**
 * The checkpoint-and-resume rule of every pipeline step: a step writes its manifest
 * under `runs/<workflowId>/<step>/manifest.json` before it reports success, and an
 * attempt that finds the manifest returns it without redoing the work.
 */
import type { Pool } from 'pg';
import { MissingArtifactError, stepManifestKey, type StepManifest, type StepResult } from '../contracts';
import { repos } from './repositories';
import type { ObjectStore } from './s3';

/**
 * Run a pipeline step at most once per workflow run.
 *
 * When `runs/<workflowId>/<step>/manifest.json` exists, its summary is returned and
 * `compute` is not called. Otherwise `compute` runs, its manifest (summary plus
 * `extra`) is written to S3 first and the `run_steps` row second; a crash between the
 * two is repaired by the next attempt, which finds the manifest and writes the row.
 *
 * @param opts.startedAtMs when the step began (epoch ms), for a step whose work ran before
 *   this activity (the extract fan-out's children): `durationMs` counts from it, not from
 *   `compute`'s start.
 * @returns the step's summary with `manifestKey`, `reused` and `durationMs`.
 * @throws whatever `compute` throws (nothing is written then).
 */
export async function runStep<S extends object>(
  deps: { store: ObjectStore; pool: Pool },
  workflowId: string,
  step: string,
  compute: () => Promise<{ summary: S; extra?: Record<string, unknown> }>,
  opts: { startedAtMs?: number } = {},
): Promise<StepResult<S>> {
  const key = stepManifestKey(workflowId, step);
  let manifest = await deps.store.getJson<StepManifest<S>>(key);
  let reused = true;
  if (!manifest) {
    reused = false;
    const started = opts.startedAtMs ?? Date.now();
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
  await repos.runs.recordStep(deps.pool, { workflowId, step, manifestKey: key, summary: manifest.summary, durationMs: manifest.durationMs });
  return { ...manifest.summary, manifestKey: key, reused, durationMs: manifest.durationMs };
}

/**
 * Read a finished step's whole manifest.
 *
 * @throws MissingArtifactError (not retried) naming the key when the step has not run.
 */
export async function readStepManifest<M extends StepManifest<unknown>>(store: ObjectStore, workflowId: string, step: string): Promise<M> {
  const key = stepManifestKey(workflowId, step);
  const m = await store.getJson<M>(key);
  if (!m) throw new MissingArtifactError(store.uri(key), `step manifest of "${step}" (the step has not run)`);
  return m;
}
