import pino from 'pino';

/** The structured logger type used across activities, workers and the CLI. */
export type Logger = pino.Logger;

/**
 * Create the process's JSON logger (pino). Use `logger.child({ ... })` for context.
 *
 * @param level pino level, e.g. `info`; `silent` disables output.
 * @param name component name added to every line, e.g. `worker-video`.
 */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, base: { name, pid: process.pid } });
}
