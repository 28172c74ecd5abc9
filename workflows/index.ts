/** Every workflow the workers register (`workflowsPath` points here). */
export { newCategoryWorkflow } from './new-category';
export { extractVideoWorkflow } from './extract-video';
export { backfillWorkflow } from './backfill';
export { labelingWorkflow } from './labeling';
export { retrainWorkflow, retrainAllWorkflow } from './retrain';
export { batchPredictWorkflow } from './batch-predict';
