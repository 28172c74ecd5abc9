/**
 * Run a module's functions on a worker thread (`node:worker_threads`), off the event
 * loop, so that an activity's heartbeats, S3 requests and other activities keep flowing
 * while a long synchronous computation (a forward pass, an index build) runs.
 *
 * The module is loaded once in the thread (through tsx's CommonJS loader, so TypeScript
 * sources work the same under tsx, jest and plain node) and keeps its state between calls:
 * a model loaded by the first call stays loaded.
 */
import { Worker } from 'node:worker_threads';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE_CLASSES, isNonRetryable, TransientError } from '../contracts';

/** An error as it crosses the thread boundary: its class name, message, stack and own data fields. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** Own enumerable fields with plain values (e.g. `file`, `reason` of a VideoDecodeError). */
  fields?: Record<string, unknown>;
}

/**
 * Rebuild a thread-side error on this side with its failure type intact: an instance of
 * the same reelset failure class (so `instanceof` works and Temporal reports the class
 * name as the failure `type`, with that class's retry decision), or, for any other
 * error (a `TypeError`, a library's own class), an `ApplicationFailure` whose `type` is
 * the thread-side name and which retries unless that name is listed non-retryable.
 */
export function reviveError(e: SerializedError): Error {
  const cls = (FAILURE_CLASSES as Record<string, { prototype: Error; mayRetry: boolean }>)[e.name];
  if (cls) {
    const err = Object.create(cls.prototype) as Error & Record<string, unknown>;
    Object.assign(err, e.fields ?? {}, { type: e.name, nonRetryable: !cls.mayRetry });
    Object.defineProperty(err, 'message', { value: e.message, writable: true, configurable: true });
    Object.defineProperty(err, 'name', { value: e.name, writable: true, configurable: true });
    Object.defineProperty(err, 'stack', { value: e.stack ?? `${e.name}: ${e.message}`, writable: true, configurable: true });
    return err;
  }
  const failure = ApplicationFailure.create({ type: e.name || 'Error', message: e.message, nonRetryable: isNonRetryable(e.name) });
  if (e.stack) failure.stack = e.stack;
  return failure;
}

interface Reply {
  id: number;
  ok?: unknown;
  error?: SerializedError;
  progress?: unknown;
}

const BOOT = `
const { parentPort, workerData } = require('node:worker_threads');
require(workerData.tsx).register();
const mod = require(workerData.module);
parentPort.on('message', async (msg) => {
  try {
    const progress = (p) => parentPort.postMessage({ id: msg.id, progress: p });
    const ok = await mod[msg.fn](...msg.args, progress);
    const transfer = [];
    const visit = (v) => { if (v && ArrayBuffer.isView(v) && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) transfer.push(v.buffer); };
    if (ok && typeof ok === 'object') for (const v of Object.values(ok)) visit(v);
    parentPort.postMessage({ id: msg.id, ok }, transfer);
  } catch (err) {
    const fields = {};
    if (err && typeof err === 'object') for (const [k, v] of Object.entries(err)) if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) fields[k] = v;
    parentPort.postMessage({ id: msg.id, error: { name: (err && err.name) || 'Error', message: (err && err.message) || String(err), stack: err && err.stack, fields } });
  }
});
`;

/**
 * A worker thread serving the exported async functions of one module.
 *
 * Calls are answered in order; each may post progress (the thread-side function gets a
 * `progress(value)` callback as its last argument). The thread does not keep the
 * process alive while idle. A thread that dies fails its pending calls and is replaced
 * on the next call.
 *
 * @example
 *   const t = new ModuleThread(require.resolve('../activities/common/embed-worker'));
 *   const r = await t.call<{ vectors: Float32Array }>('embed', [images]);
 */
export class ModuleThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onProgress?: (p: unknown) => void }>();

  /** @param modulePath absolute path of the module (`.ts` or `.js`). */
  constructor(private readonly modulePath: string) {}

  /**
   * Call `fn(...args, progress)` in the thread.
   *
   * Arguments and results cross by structured clone; a typed array that spans its
   * whole buffer in the result is transferred, not copied. Pass `transfer` to move
   * argument buffers instead of copying them.
   *
   * @throws the thread-side error revived by {@link reviveError} (same failure type) when
   *   the function throws; a retryable `TransientError` when the thread dies.
   */
  call<T>(fn: string, args: unknown[], opts: { onProgress?: (p: unknown) => void; transfer?: ArrayBuffer[] } = {}): Promise<T> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress: opts.onProgress });
      worker.ref();
      worker.postMessage({ id, fn, args }, opts.transfer ?? []);
    });
  }

  /** Stop the thread (pending calls fail). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(BOOT, {
      eval: true,
      workerData: { module: this.modulePath, tsx: require.resolve('tsx/cjs/api') },
    });
    worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.progress !== undefined) {
        p.onProgress?.(m.progress);
        return;
      }
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (m.error) p.reject(reviveError(m.error));
      else p.resolve(m.ok);
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new TransientError(`worker thread for ${this.modulePath} died: ${err.message}`, { cause: err }));
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }
}
