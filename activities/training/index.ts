/**
 * The training domain's public surface: its activity factories (`activities.ts`) and what
 * the entry points (CLI, benches, workers) call directly. Entry points import this file,
 * never the domain's inner files (`npm run lint` checks it).
 */
export { createTrainingActivities } from './activities';
export { withLogitOffsets } from './head-model';
export { predict } from './predict';
export { deserializeModel } from './serialize';
export { type DistillLoss, distillStudent, fineTuneStudent, fitStudent } from './student';
export { fitTeacher, trainTeacher } from './teacher';
export { fineTuneTeacher, predictPixels, wholeBackboneTeacher } from './teacher-finetune';
export { hasConvolutionGradients, loadSplitBackbone, trunkInputs } from './trunk';
