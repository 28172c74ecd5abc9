import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** A worker process started by a test, killable like a crashed machine. */
export interface WorkerProcess {
  proc: ChildProcess;
  output: () => string;
  /** SIGKILL the worker's whole process group (no clean-up runs), and wait for it to exit. */
  kill: () => Promise<void>;
}

/**
 * Start `workers/<name>-worker.ts` (or the labelling gateway) as its own process group with `env` added to the
 * environment; resolves when it logs that it started.
 *
 * @throws Error with the worker's output when it exits or takes over 90 s to start.
 */
export async function startWorker(name: 'video' | 'gpu' | 'gateway', env: Record<string, string>): Promise<WorkerProcess> {
  const file = name === 'gateway' ? 'workers/labeling-gateway.ts' : `workers/${name}-worker.ts`;
  const proc = spawn(process.execPath, [require.resolve('tsx/cli'), path.join(ROOT, file)], {
    cwd: ROOT,
    env: { ...process.env, NODE_NO_WARNINGS: '1', REELSET_LOG_LEVEL: 'info', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const started = Date.now();
  while (!out.includes('worker started')) {
    if (proc.exitCode !== null) throw new Error(`${name} worker exited (${proc.exitCode}):\n${out}`);
    if (Date.now() - started > 90_000) throw new Error(`${name} worker did not start in 90 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    proc,
    output: () => out,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          proc.kill('SIGKILL');
        }
        await exited;
      }
    },
  };
}
