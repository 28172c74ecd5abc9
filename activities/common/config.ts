import * as path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0'])
  .transform((v) => v === 'true' || v === '1');

/**
 * Every environment variable reelset reads, with its default.
 *
 * Parsed by {@link loadConfig}, never at import time, so tests can pass their own
 * environment. The same variables are read by `infra/services.sh` (ports, data
 * directory) and by every worker and CLI command.
 */
export const Config = z.object({
  /** Directory for local service data and logs (Temporal SQLite, Postgres cluster, S3 objects). */
  REELSET_DATA_DIR: z.string().default(path.resolve(process.cwd(), '.data')),
  /** Temporal frontend address, host:port. */
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  /** Temporal namespace the workflows run in. */
  TEMPORAL_NAMESPACE: z.string().default('default'),
  /** Temporal Web UI base URL, printed in summaries so people know where to look. */
  TEMPORAL_UI_URL: z.string().default('http://127.0.0.1:8233'),
  /** Task queue of the CPU worker: workflows, catalog, frames, embeddings, dedupe, labelling, dataset, publish. */
  REELSET_VIDEO_TASK_QUEUE: z.string().default('reelset-video'),
  /** Task queue of the training worker (teacher, student, evaluation): the GPU queue. */
  REELSET_GPU_TASK_QUEUE: z.string().default('reelset-gpu'),
  /** PostgreSQL connection string. */
  DATABASE_URL: z.string().default('postgres://reelset@127.0.0.1:55432/reelset'),
  /** S3 endpoint; empty means AWS S3 itself (region endpoint). */
  S3_ENDPOINT: z.string().default('http://127.0.0.1:7070'),
  /** S3 region. */
  S3_REGION: z.string().default('us-east-1'),
  /** Bucket holding videos, frames, embeddings, manifests and models. */
  S3_BUCKET: z.string().default('reelset'),
  /** S3 access key id (the local server's root user by default). */
  S3_ACCESS_KEY_ID: z.string().default('reelset'),
  /** S3 secret access key. Never logged. */
  S3_SECRET_ACCESS_KEY: z.string().default('reelset-secret'),
  /** Path-style addressing (http://host/bucket/key), which S3-compatible servers need. */
  S3_FORCE_PATH_STYLE: bool.default(true),
  /** Upper bound of concurrent S3 requests (and sockets) per worker process. */
  S3_MAX_SOCKETS: z.coerce.number().int().positive().default(16),
  /** Frame uploads in flight per extraction (bounded below the socket pool). */
  S3_UPLOAD_CONCURRENCY: z.coerce.number().int().positive().max(256).default(8),
  /** TensorFlow.js backend: auto picks tensorflow-gpu, then tensorflow, then wasm, then cpu. */
  REELSET_TF_BACKEND: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /** Maximum activities one worker runs at once. */
  REELSET_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().positive().default(4),
  /** Log level of the JSON logger (trace, debug, info, warn, error). */
  REELSET_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
  /** ffmpeg binary (fluent-ffmpeg); found on PATH by default. */
  FFMPEG_PATH: z.string().default('ffmpeg'),
  /** ffprobe binary. */
  FFPROBE_PATH: z.string().default('ffprobe'),
});
export type Config = z.infer<typeof Config>;

/**
 * Parse and validate the configuration from an environment.
 *
 * @param env the environment (default `process.env`); unknown variables are ignored.
 * @returns the validated configuration with every default filled in.
 * @throws ConfigError naming each invalid variable and why.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(Config.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const parsed = Config.safeParse(picked);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${detail}`);
  }
  return parsed.data;
}

/** The configuration with secrets replaced, for logging at start. */
export function redactConfig(config: Config): Record<string, unknown> {
  return { ...config, S3_SECRET_ACCESS_KEY: '***', DATABASE_URL: config.DATABASE_URL.replace(/:[^:@/]+@/, ':***@') };
}

/** Thrown when an environment variable does not validate. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
