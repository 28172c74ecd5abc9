/**
 * The bounded upload pool: frame uploads run concurrently, at most `limit` at a time;
 * whoever adds one more waits for a free slot (backpressure on the whole pipeline).
 */

/**
 * At most `limit` tasks in flight. A task that fails is reported once to `onError` (the
 * extraction stops on its first failure) and never rejects anything else.
 *
 * @example
 *   const pool = new UploadPool(8, fail);
 *   await pool.run(() => sink.put(record, bytes)); // returns once the upload has *started*
 *   await pool.settle();                           // every started upload finished
 */
export class UploadPool {
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    readonly limit: number,
    private readonly onError: (err: unknown) => void,
  ) {
    if (!(limit >= 1)) throw new RangeError(`upload concurrency must be at least 1, got ${limit}`);
  }

  /** Tasks running now. */
  get size(): number {
    return this.inflight.size;
  }

  /** Wait until fewer than `limit` tasks run, then start `task` (its failure goes to `onError`). */
  async run(task: () => Promise<void>): Promise<void> {
    while (this.inflight.size >= this.limit) await Promise.race(this.inflight);
    const p: Promise<void> = Promise.resolve()
      .then(task)
      .catch((err: unknown) => this.onError(err))
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Wait for every task started so far (and any they started) to finish; never rejects. */
  async settle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }
}
