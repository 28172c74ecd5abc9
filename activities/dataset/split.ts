/** The split by video lives in `lib/split.ts` (the label step decides it when people label); re-exported here for the dataset step. */
export { majorityLabelByVideo, splitByVideo } from '../../lib/split';
