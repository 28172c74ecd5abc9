/**
 * The in-order commit tracker: frames finish out of order (uploads complete in any
 * order), but progress is committed as a prefix in sample order, so a retried attempt can
 * resume after the last committed frame without losing or repeating one.
 */
import type { FrameRecord } from '../../contracts';
import type { ExtractProgress, FrameOutcome } from './types';

/** Options of {@link CommitTracker}. */
export interface CommitTrackerOptions {
  /** Progress committed before this attempt (an empty one on a fresh start). */
  start: ExtractProgress;
  /** Records of the frames `start` covers, in index order. */
  frames: FrameRecord[];
  /** Records a batch and the progress it completes (the sink's `commit`); absent: nothing to record. */
  commit?: (frames: FrameRecord[], progress: ExtractProgress) => Promise<void>;
  /** Commit at least every this many frames of the prefix... */
  every: number;
  /** ...or once this many milliseconds passed since the last commit. */
  intervalMs: number;
  /** Decoder complaints so far, copied into each committed progress. */
  decodeErrorCount: () => number;
  /** A commit failed (the extraction stops). */
  onError: (err: unknown) => void;
  /** Clock, milliseconds (tests). */
  now?: () => number;
}

/**
 * Tracks which sampled frames are done (stored or dropped), advances the committed prefix
 * and commits it in batches, one commit at a time.
 *
 * `done(i, outcome)` may be called in any order; the prefix advances over consecutive
 * indexes from `start.sampled`. A commit starts when the prefix has grown by `every`
 * frames or `intervalMs` has passed, never while another is running or after `stop()`.
 * `flush()` waits for a running commit and commits the rest (even an empty batch, so the
 * final progress is recorded).
 */
export class CommitTracker {
  private readonly pending = new Map<number, FrameOutcome>();
  private readonly progress: ExtractProgress;
  private batch: FrameRecord[] = [];
  private committedSampled: number;
  private lastCommit: number;
  private committing?: Promise<void>;
  private stopped = false;
  private readonly now: () => number;
  /** Records of every committed stored frame, in index order (the resumed ones first). */
  readonly committed: FrameRecord[];

  constructor(private readonly opts: CommitTrackerOptions) {
    this.progress = { ...opts.start, dropped: { ...opts.start.dropped } };
    this.committed = [...opts.frames];
    this.committedSampled = this.progress.sampled;
    this.now = opts.now ?? Date.now;
    this.lastCommit = this.now();
  }

  /** The prefix: frames done in sample order (also the next index expected). */
  get prefix(): number {
    return this.progress.sampled;
  }

  /** Progress as committed or about to be (dropped counts, last timestamp of the prefix). */
  get current(): Readonly<ExtractProgress> {
    return this.progress;
  }

  /** Frame `index` is done; advances the prefix over every consecutive done frame and may start a commit. */
  done(index: number, outcome: FrameOutcome): void {
    this.pending.set(index, outcome);
    for (let d = this.pending.get(this.progress.sampled); d; d = this.pending.get(this.progress.sampled)) {
      this.pending.delete(this.progress.sampled);
      if (d.record) this.batch.push(d.record);
      else this.progress.dropped[d.reason]++;
      this.progress.lastTimestampS = d.timestampS;
      this.progress.sampled++;
    }
    this.commitSoon();
  }

  /** No more commits start (after a failure). */
  stop(): void {
    this.stopped = true;
  }

  /** Wait for a running commit, then commit whatever the prefix holds. @throws what the commit throws. */
  async flush(): Promise<void> {
    await this.committing;
    await this.commit(true);
  }

  /** Wait for a running commit; never rejects. */
  async settle(): Promise<void> {
    await this.committing?.catch(() => undefined);
  }

  private commitSoon(): void {
    if (this.committing || this.stopped) return;
    const grown = this.progress.sampled - this.committedSampled;
    if (grown === 0 || (grown < this.opts.every && this.now() - this.lastCommit < this.opts.intervalMs)) return;
    this.committing = this.commit(false)
      .catch((err: unknown) => this.opts.onError(err))
      .finally(() => (this.committing = undefined));
  }

  private async commit(force: boolean): Promise<void> {
    if (!force && this.progress.sampled === this.committedSampled) return;
    const frames = this.batch;
    this.batch = [];
    this.progress.frames += frames.length;
    this.progress.decodeErrorCount = this.opts.decodeErrorCount();
    const snapshot: ExtractProgress = { ...this.progress, dropped: { ...this.progress.dropped } };
    await this.opts.commit?.(frames, snapshot);
    this.committed.push(...frames);
    this.committedSampled = snapshot.sampled;
    this.lastCommit = this.now();
  }
}
