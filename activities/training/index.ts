/**
 * Classifier heads on frozen embeddings: training (teacher, distilled student), prediction,
 * (de)serialisation, CutMix, seeded randomness and evaluation metrics.
 */
export * from './cutmix';
export * from './heads';
export * from './metrics';
export * from './rng';
export * from './serialize';
