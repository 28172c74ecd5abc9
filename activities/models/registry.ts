/**
 * The model registry in Postgres: stages of each published version (`models.stage`, both
 * roles of a version move together), every transition with who, when and why
 * (`model_transitions`), evaluations on the label's fixed evaluation set
 * (`model_evaluations`) and the promotion gate ({@link promotionGate}).
 *
 * Concurrency: every transition of a label runs in one transaction holding the label's
 * advisory lock (the one the publish step takes too) and re-reads the production version
 * under it; a promotion that names the production version it was compared against
 * (`expectedProduction`) fails with `PromotionConflictError` when another transition
 * changed it meanwhile. A partial unique index (`models_one_production`) makes two
 * production versions of a label impossible even for writers that skip this module.
 */
import type { Pool, PoolClient } from 'pg';
import {
  PromotionConflictError,
  RegistryError,
  type GateConfig,
  type GateDecision,
  type ModelEvaluation,
  type ModelRef,
  type ModelStage,
  type ModelTransition,
} from '../../contracts';
import { withTransaction, type Queryable } from '../../lib/db';
import { repos } from '../../lib/repositories';
import { promotionGate } from './gate';

/** One published version of a label, as `reelset models list` shows it. */
export interface RegisteredModel {
  name: string;
  version: number;
  stage: ModelStage;
  roles: ('teacher' | 'student')[];
  workflowId: string;
  dataset: { name: string; version: number };
  labels: string[];
  /** `models/<name>/v<version>/student` (the image model). */
  studentPrefix: string | null;
  teacherPrefix: string | null;
  createdAt: string;
  /** The student's evaluation on the label's current evaluation-set version, when there is one. */
  evaluation: ModelEvaluation | null;
}

/** Settings of a promotion. */
export interface PromoteRequest {
  name: string;
  version: number;
  /** Who asks: a person (`--by`, default the OS user) or `workflow:<id>`. */
  actor: string;
  reason: string;
  /**
   * The production version the caller compared against (null: none). When given and the
   * registry's production version differs under the lock, the promotion fails with
   * `PromotionConflictError` (another promotion won). Undefined: compare with whatever is
   * in production under the lock.
   */
  expectedProduction?: number | null;
  gate: GateConfig;
}

/** Result of {@link promote}. */
export interface PromoteResult {
  promoted: boolean;
  gate: GateDecision;
  /** Transitions written (archive of the old production, promotion of the candidate). */
  transitions: ModelTransition[];
  production: number | null;
}

/** The label's current evaluation-set version, or null when it has none. */
export async function currentEvalVersion(db: Queryable, label: string): Promise<number | null> {
  return repos.evalSets.currentVersion(db, label);
}

/** The version in production for a label, or null. */
export async function productionVersion(db: Queryable, name: string): Promise<number | null> {
  return repos.models.productionVersion(db, name);
}

/** One evaluation of a model on an evaluation-set version, or null. */
export async function getEvaluation(
  db: Queryable,
  name: string,
  version: number,
  evalVersion: number,
  role: 'teacher' | 'student' = 'student',
): Promise<ModelEvaluation | null> {
  return repos.modelEvaluations.get(db, name, version, evalVersion, role);
}

/** Record (idempotently: a second write of the same evaluation keeps the first) a model's evaluation on an evaluation-set version. */
export async function recordEvaluation(db: Queryable, e: Omit<ModelEvaluation, 'createdAt'>): Promise<void> {
  await repos.modelEvaluations.record(db, e);
}

async function modelsOf(db: Queryable, label?: string, version?: number): Promise<RegisteredModel[]> {
  const out = new Map<string, RegisteredModel>();
  for (const row of await repos.models.rows(db, label, version)) {
    const id = `${row.name}@${row.version}`;
    let m = out.get(id);
    if (!m) {
      m = {
        name: row.name,
        version: row.version,
        stage: row.stage,
        roles: [],
        workflowId: row.workflow_id,
        dataset: { name: row.dataset_name, version: row.dataset_version },
        labels: row.labels,
        studentPrefix: null,
        teacherPrefix: null,
        createdAt: row.created_at.toISOString(),
        evaluation: null,
      };
      out.set(id, m);
    }
    m.roles.push(row.role);
    if (row.role === 'student') m.studentPrefix = row.artifact_prefix;
    else m.teacherPrefix = row.artifact_prefix;
    // A version's stage is the student's (both roles move together).
    if (row.role === 'student') m.stage = row.stage;
  }
  const models = [...out.values()];
  const evalVersions = new Map<string, number | null>();
  for (const m of models) {
    if (!evalVersions.has(m.name)) evalVersions.set(m.name, await currentEvalVersion(db, m.name));
    const ev = evalVersions.get(m.name);
    if (ev) m.evaluation = await getEvaluation(db, m.name, m.version, ev);
  }
  return models;
}

/** Every published version (of one label, or all), newest first per label, with its stage and its evaluation on the current set. */
export function listModels(db: Queryable, label?: string): Promise<RegisteredModel[]> {
  return modelsOf(db, label);
}

/**
 * The version a reference names (`label@3`, `label@production`, `label@latest`).
 *
 * @throws RegistryError when the label has no such version (saying which versions and stages it has).
 */
export async function resolveModel(db: Queryable, ref: ModelRef): Promise<RegisteredModel> {
  const all = await modelsOf(db, ref.label);
  const found =
    ref.version === 'production' ? all.find((m) => m.stage === 'production') : ref.version === 'latest' ? all[0] : all.find((m) => m.version === ref.version);
  if (!found) {
    const have = all.map((m) => `v${m.version} (${m.stage})`).join(', ');
    throw new RegistryError(`no model ${ref.label}@${ref.version}: ${have ? `the label has ${have}` : `label "${ref.label}" has no published model`}`);
  }
  return found;
}

/** Transitions of a label (or of one version), oldest first. */
export async function transitionsOf(db: Queryable, name: string, version?: number): Promise<ModelTransition[]> {
  return repos.models.transitions(db, name, version);
}

const setStage = (
  c: PoolClient,
  name: string,
  version: number,
  from: ModelStage | null,
  to: ModelStage,
  actor: string,
  reason: string,
  gate: GateDecision | null,
) => repos.models.setStage(c, { name, version, from, to, actor, reason, gate });

/** Record a version's publication as a candidate (idempotent: once per version). */
export async function recordPublished(db: Queryable, name: string, version: number, actor: string): Promise<void> {
  await repos.models.recordPublished(db, name, version, actor);
}

/**
 * The gate's decision for a candidate against the current production model, on the
 * label's current evaluation set (read-only; {@link promote} decides again under the lock).
 */
export async function gateDecision(db: Queryable, name: string, version: number, gate: GateConfig): Promise<GateDecision> {
  const evalVersion = await currentEvalVersion(db, name);
  const prod = await productionVersion(db, name);
  const cand = evalVersion ? await getEvaluation(db, name, version, evalVersion) : null;
  const prodEval = evalVersion && prod !== null ? await getEvaluation(db, name, prod, evalVersion) : null;
  return promotionGate({
    name,
    candidateVersion: version,
    candidate: cand?.metrics ?? null,
    productionVersion: prod,
    production: prodEval?.metrics ?? null,
    evalVersion,
    config: gate,
  });
}

/**
 * Promote a candidate to production when the gate lets it: in one transaction under the
 * label's lock, check the version is a candidate and production is still
 * `expectedProduction`, run {@link promotionGate} on the evaluations, then archive the old
 * production version and promote the candidate, each with a transition row (the
 * promotion's row carries the gate's decision).
 *
 * @returns `promoted: false` with the gate's decision (which rule held it back) when it did not pass.
 * @throws RegistryError when the version does not exist or is not a candidate.
 * @throws PromotionConflictError when production is no longer `expectedProduction`.
 */
export async function promote(pool: Pool, req: PromoteRequest): Promise<PromoteResult> {
  return withTransaction(pool, async (c) => {
    await repos.models.lockLabel(c, req.name);
    const stage = await repos.models.stageForUpdate(c, req.name, req.version);
    if (!stage) throw new RegistryError(`no model ${req.name}@${req.version} in the registry`);
    const prod = await productionVersion(c, req.name);
    if (req.expectedProduction !== undefined && req.expectedProduction !== prod) {
      throw new PromotionConflictError(
        `production of "${req.name}" changed while ${req.name}@${req.version} was being compared: expected ${req.expectedProduction === null ? 'none' : `v${req.expectedProduction}`}, found ${prod === null ? 'none' : `v${prod}`}; the gate must compare against the new production model`,
      );
    }
    if (stage !== 'candidate') {
      throw new RegistryError(
        `${req.name}@${req.version} is ${stage}, not a candidate${stage === 'archived' ? ' (bring an archived version back with `reelset models rollback --to`)' : ''}`,
      );
    }
    const gate = await gateDecision(c, req.name, req.version, req.gate);
    if (!gate.promote) return { promoted: false, gate, transitions: [], production: prod };
    const transitions: ModelTransition[] = [];
    if (prod !== null)
      transitions.push(await setStage(c, req.name, prod, 'production', 'archived', req.actor, `replaced by v${req.version}: ${req.reason}`, null));
    transitions.push(await setStage(c, req.name, req.version, 'candidate', 'production', req.actor, req.reason, gate));
    return { promoted: true, gate, transitions, production: req.version };
  });
}

/**
 * Roll a label's production back: the production version is archived and `to` (default:
 * the version that was in production before it, from the transitions) is put back in
 * production. No gate: a rollback is a person's decision, recorded with who and why.
 *
 * @throws RegistryError when there is no production version and no `to`, no earlier
 *   production version, or `to` does not exist or is the production version.
 * @throws PromotionConflictError when production is no longer `expectedProduction`.
 */
export async function rollback(
  pool: Pool,
  req: { name: string; to?: number; actor: string; reason: string; expectedProduction?: number | null },
): Promise<{ transitions: ModelTransition[]; production: number }> {
  return withTransaction(pool, async (c) => {
    await repos.models.lockLabel(c, req.name);
    const prod = await productionVersion(c, req.name);
    if (req.expectedProduction !== undefined && req.expectedProduction !== prod) {
      throw new PromotionConflictError(
        `production of "${req.name}" is ${prod === null ? 'none' : `v${prod}`}, not v${req.expectedProduction}: another transition happened first`,
      );
    }
    let to = req.to;
    if (to === undefined) {
      to = await repos.models.previousProduction(c, req.name, prod);
      if (to === undefined)
        throw new RegistryError(
          `"${req.name}" has no earlier production version to roll back to${prod === null ? ' and no production version' : ` (production is v${prod})`}; name one with --to`,
        );
    }
    if (to === prod) throw new RegistryError(`${req.name}@${to} is already in production`);
    const stage = await repos.models.stageForUpdate(c, req.name, to);
    if (!stage) throw new RegistryError(`no model ${req.name}@${to} in the registry`);
    const transitions: ModelTransition[] = [];
    if (prod !== null) transitions.push(await setStage(c, req.name, prod, 'production', 'archived', req.actor, `rolled back to v${to}: ${req.reason}`, null));
    transitions.push(await setStage(c, req.name, to, stage, 'production', req.actor, `rollback: ${req.reason}`, null));
    return { transitions, production: to };
  });
}
