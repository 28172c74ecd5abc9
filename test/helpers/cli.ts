import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '../../cli/bin.js');

/** What a finished CLI process printed and returned. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A `reelset` process started by a test, still running. */
export interface CliProcess {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<CliRun>;
}

/** Start `reelset <args>` (cli/bin.js) with `env` added to the environment. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NODE_NO_WARNINGS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<CliRun>((resolve) => proc.once('close', (code) => resolve({ code, stdout: out, stderr: err })));
  return { proc, stdout: () => out, stderr: () => err, done };
}

/**
 * Run `reelset <args>` to the end.
 *
 * @throws Error with its output when it runs longer than `timeoutMs`.
 */
export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Promise<CliRun> {
  const p = startCli(args, env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      p.proc.kill('SIGKILL');
      reject(new Error(`reelset ${args.join(' ')} ran over ${timeoutMs} ms:\n${p.stdout()}\n${p.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([p.done, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
