/**
 * The models domain's public surface: its activity factories (`activities.ts`) and what
 * the entry points (CLI, benches, workers) call directly. Entry points import this file,
 * never the domain's inner files (`npm run lint` checks it).
 */
export { createBatchPredictActivities, createModelActivities, createModelEvaluationActivities } from './activities';
export { evalSetCandidates, evalSetHistory, evenlySpaced, getEvalSet, growEvalSet } from './evalset';
export { evaluateOnEvalSet } from './evaluate';
export { exportStudent } from './export';
export { gateDecision, listModels, productionVersion, promote, type RegisteredModel, resolveModel, rollback, transitionsOf } from './registry';
export { calibrateScope, ensureScope, type ScopeOutcome } from './scope';
