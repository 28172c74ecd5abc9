/**
 * Configuration: every environment variable reelset reads, validated by one zod schema
 * ({@link Config}). Default values live in `infra/defaults.env`, which `infra/env.sh`
 * reads too, so the code and the local scripts never disagree.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { BackboneName, BOOTSTRAP_DEFAULTS, ConfigError, formatIssues, type GateConfig } from '../contracts';

/** The checkout's root (parent of `lib/`); `${REELSET_ROOT}` in `infra/defaults.env`. */
export const REELSET_ROOT = path.resolve(__dirname, '..');
/** Path of the defaults file. */
export const DEFAULTS_FILE = path.join(REELSET_ROOT, 'infra/defaults.env');

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const port = z.coerce.number().int().min(1).max(65535);

/**
 * Every environment variable reelset reads. Parsed by {@link loadConfig}, never at
 * import time, so tests pass their own environment.
 */
export const Config = z.object({
  /** Directory for local service data, tools, pid files and logs. */
  REELSET_DATA_DIR: z.string().min(1),
  /** Tools installed by `infra/install.sh`. */
  REELSET_TOOLS_DIR: z.string().min(1),
  /** Service and worker logs. */
  REELSET_LOG_DIR: z.string().min(1),
  /** Pid files of local services and workers. */
  REELSET_RUN_DIR: z.string().min(1),
  /** The `temporal` CLI (tests start dev servers with it). */
  TEMPORAL_CLI_PATH: z.string().min(1),
  /** The time-skipping test server (workflow tests). */
  TEMPORAL_TEST_SERVER_PATH: z.string().min(1),
  /** Label Studio's virtual environment (PyPI `label-studio`, installed by `infra/install.sh`). */
  LABEL_STUDIO_VENV: z.string().min(1),
  /** Local Temporal frontend port (`infra/services.sh`). */
  TEMPORAL_PORT: port,
  /** Local Temporal Web UI port. */
  TEMPORAL_UI_PORT: port,
  /** Local PostgreSQL port. */
  PG_PORT: port,
  /** Local S3 server port. */
  S3_PORT: port,
  /** Local Label Studio port (`infra/services.sh`). */
  LABEL_STUDIO_PORT: port,
  /** Port the labelling gateway (webhook receiver, `workers/labeling-gateway.ts`) listens on, on 127.0.0.1. */
  LABEL_STUDIO_GATEWAY_PORT: port,
  /** Temporal frontend address, host:port (the standard `TEMPORAL_*` variables: `@temporalio/envconfig`, see `lib/temporal.ts`). */
  TEMPORAL_ADDRESS: z.string().min(1),
  /** `true`: connect over TLS (verified by the system's CAs, or the server CA below); `false`: never; empty: TLS when a certificate, a CA or an API key is set. */
  TEMPORAL_TLS: z.union([z.literal(''), bool]).transform((v) => (v === '' ? undefined : v)),
  /** Client certificate (PEM file) for mTLS to a remote cluster or Temporal Cloud; with `TEMPORAL_TLS_CLIENT_KEY_PATH`. Empty: none. */
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string(),
  /** Private key (PEM file) of the client certificate. */
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string(),
  /** CA certificate (PEM file) the server's certificate is checked against, for a private CA. Empty: the system's CAs. */
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string(),
  /** Server name (SNI) to expect in the server's certificate, when it differs from the address's host. Empty: the host. */
  TEMPORAL_TLS_SERVER_NAME: z.string(),
  /** Earlier name of `TEMPORAL_TLS_CLIENT_CERT_PATH`, still accepted (the standard name wins). */
  TEMPORAL_TLS_CERT: z.string(),
  /** Earlier name of `TEMPORAL_TLS_CLIENT_KEY_PATH`, still accepted. */
  TEMPORAL_TLS_KEY: z.string(),
  /** Earlier name of `TEMPORAL_TLS_SERVER_CA_CERT_PATH`, still accepted. */
  TEMPORAL_TLS_CA: z.string(),
  /** Temporal Cloud API key (implies TLS). Never logged. */
  TEMPORAL_API_KEY: z.string(),
  /** Temporal namespace the workflows run in. */
  TEMPORAL_NAMESPACE: z.string().min(1),
  /** Temporal Web UI base URL, printed in summaries so people know where to look. */
  TEMPORAL_UI_URL: z.string().min(1),
  /** Task queue of the CPU worker: workflows, catalog, frames, embeddings, dedupe, labelling, dataset, publish. */
  REELSET_VIDEO_TASK_QUEUE: z.string().min(1),
  /** Task queue of the training worker (teacher, student, evaluation): the GPU queue. */
  REELSET_GPU_TASK_QUEUE: z.string().min(1),
  /** PostgreSQL connection string. Its password is never logged. */
  DATABASE_URL: z.string().min(1),
  /** S3 endpoint; empty means AWS S3 itself (the region's endpoint). */
  S3_ENDPOINT: z.string(),
  /** S3 region. */
  S3_REGION: z.string().min(1),
  /** Bucket holding videos, frames, embeddings, manifests and models. */
  S3_BUCKET: z.string().min(3),
  /** S3 access key id (the local server's root user by default). */
  S3_ACCESS_KEY_ID: z.string().min(1),
  /** S3 secret access key. Never logged. */
  S3_SECRET_ACCESS_KEY: z.string().min(1),
  /** Path-style addressing (http://host/bucket/key), which S3-compatible servers need. */
  S3_FORCE_PATH_STYLE: bool,
  /** Upper bound of concurrent S3 requests (and sockets) per worker process. */
  S3_MAX_SOCKETS: z.coerce.number().int().positive(),
  /** Frame uploads in flight per extraction (bounded below the socket pool). */
  S3_UPLOAD_CONCURRENCY: z.coerce.number().int().positive().max(256),
  /** Label Studio's base URL as workers and people reach it (API calls and the project links printed for people). */
  LABEL_STUDIO_URL: z.url({ protocol: /^https?$/ }),
  /** Email (user name) of Label Studio's admin, created on its first start; people log in with it unless you invite others. */
  LABEL_STUDIO_ADMIN_EMAIL: z.string().min(3),
  /** Password of that admin. Never logged. */
  LABEL_STUDIO_ADMIN_PASSWORD: z.string().min(8),
  /** API token of that admin (legacy `Authorization: Token ...`), preset on Label Studio's first start. Never logged. */
  LABEL_STUDIO_API_TOKEN: z.string().min(6),
  /** Database of Label Studio in the project's PostgreSQL server (local services only). */
  LABEL_STUDIO_DATABASE: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case PostgreSQL identifier'),
  /** Seconds `infra/services.sh start` waits for Label Studio's `/health/` before giving up with its log. */
  LABEL_STUDIO_START_TIMEOUT: z.coerce.number().int().positive(),
  /** Shared secret Label Studio sends in the `X-Reelset-Webhook-Secret` header of every webhook; the gateway compares it in constant time. Never logged. */
  LABEL_STUDIO_WEBHOOK_SECRET: z.string().min(12),
  /** Address the labelling gateway binds (`0.0.0.0` when Label Studio runs on another machine). */
  LABEL_STUDIO_GATEWAY_HOST: z.string().min(1),
  /** URL Label Studio posts its webhooks to: the labelling gateway as Label Studio's server reaches it. */
  LABEL_STUDIO_WEBHOOK_URL: z.url({ protocol: /^https?$/ }),
  /** S3 endpoint as Label Studio's server reaches it (it streams frame images to the browser from there); empty means AWS S3. */
  LABEL_STUDIO_S3_ENDPOINT: z.string(),
  /** Access key Label Studio reads frames with (give it a read-only key outside local development). */
  LABEL_STUDIO_S3_ACCESS_KEY_ID: z.string().min(1),
  /** Secret of that key. Never logged. */
  LABEL_STUDIO_S3_SECRET_ACCESS_KEY: z.string().min(1),
  /** TensorFlow.js backend: `auto` picks tensorflow-gpu, then tensorflow, then wasm, then cpu. */
  REELSET_TF_BACKEND: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']),
  /**
   * Prefix holding `node_modules/@tensorflow/tfjs-node` (and `-gpu`) built by `infra/install.sh`
   * against PyPI TensorFlow's C library; looked up after the checkout's own node_modules.
   */
  REELSET_TFJS_NODE_DIR: z.string().min(1),
  /** The backbones converted at install time (`infra/convert-backbones.ts`: ONNX files, weights for the tfjs rebuild, provenance). */
  REELSET_MODELS_DIR: z.string().min(1),
  /**
   * Backbone of the embed step, dedupe and the student (their vectors are one: the student's head trains on the
   * embed step's rows). A deployment's choice: a label's dedupe index and caches are per backbone.
   */
  REELSET_EMBED_BACKBONE: BackboneName,
  /** Runtime of the backbones (embed step, teacher features, CutMix): `auto` is ONNX Runtime when its file loads, else tfjs (`REELSET_TF_BACKEND`). */
  REELSET_EMBED_RUNTIME: z.enum(['auto', 'onnxruntime', 'tfjs']),
  /** ONNX Runtime execution provider: `auto` is CUDA when its libraries are installed (`infra/install-gpu.sh`), else CPU. */
  REELSET_ORT_PROVIDER: z.enum(['auto', 'cpu', 'cuda']),
  /** ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose (one per core). */
  REELSET_ORT_THREADS: z.coerce.number().int().min(0).max(256),
  /** Maximum activities one video worker runs at once. */
  REELSET_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().positive(),
  /** Identity a worker polls with, shown in workflow histories (which worker ran what) and the Temporal UI; empty: the SDK's `<pid>@<hostname>`. */
  REELSET_WORKER_IDENTITY: z.string().max(200),
  /** Address the workers' Prometheus endpoints bind (`0.0.0.0` to be scraped from other machines). */
  REELSET_METRICS_HOST: z.string().min(1),
  /** Port of the video worker's `/metrics` (Temporal SDK and reelset metrics); 0 = any free port (logged). A port in use falls back to a free one, with a warning. */
  REELSET_VIDEO_METRICS_PORT: z.coerce.number().int().min(0).max(65535),
  /** Port of the training worker's `/metrics`; 0 = any free port. */
  REELSET_GPU_METRICS_PORT: z.coerce.number().int().min(0).max(65535),
  /** Level of the JSON logger. */
  REELSET_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']),
  /** ffmpeg binary; found on PATH by default. */
  FFMPEG_PATH: z.string().min(1),
  /** ffprobe binary. */
  FFPROBE_PATH: z.string().min(1),
  /** Promotion gate: the candidate's video-level balanced accuracy on the fixed evaluation set must beat production's by at least this (0..1). */
  REELSET_PROMOTION_MARGIN: z.coerce.number().min(0).max(1),
  /** Promotion gate: no label's frame-level recall may fall more than this below production's (0..1). */
  REELSET_PROMOTION_RECALL_TOLERANCE: z.coerce.number().min(0).max(1),
  /**
   * Promotion gate, `above-chance` (every candidate): the lower end of the 95% bootstrap
   * interval of the candidate's video-level balanced accuracy on the fixed evaluation set
   * must reach this, for a label against `other` (2 classes, chance 0.5); with k classes,
   * the same distance from chance 1/k towards 1 (`chanceMinimum` in `activities/models/gate.ts`).
   * 0 lets any 2-class model through (tests of the mechanism on tiny models).
   */
  REELSET_PROMOTION_MIN_LOWER_BOUND: z.coerce.number().min(0).max(1),
  /**
   * Deprecated (issue 17): the old name of `REELSET_PROMOTION_MIN_LOWER_BOUND`, once the
   * first model's minimum point estimate. Empty by default (kept as text, as `infra/env.sh`
   * exports it); when set, a number in [0, 1] used as
   * the lower-bound minimum in place of `REELSET_PROMOTION_MIN_LOWER_BOUND`, so a deployment
   * that set it keeps its choice (now applied to the interval's lower end, which is stricter).
   */
  REELSET_PROMOTION_MIN_SCORE: z
    .string()
    .refine((v) => v === '' || (/^\s*[0-9.]+\s*$/.test(v) && Number(v) >= 0 && Number(v) <= 1), 'empty, or a number in [0, 1]'),
  /** Frames taken per video (evenly spaced) when a video joins a label's evaluation set. */
  REELSET_EVAL_FRAMES_PER_VIDEO: z.coerce.number().int().min(1).max(1000),
  /** Seconds each probe process (ffprobe, the packet count, the scan, the end check) may run before it is killed; a timeout is a retryable TransientError, never cached. */
  FFPROBE_TIMEOUT_S: z.coerce.number().positive().max(86_400),
  /** Seconds an extraction's ffmpeg may go without a sign of progress (a stderr line, its `-stats` line every 0.5 s included, or an output byte) before it is killed and the attempt retried. */
  FFMPEG_STALL_TIMEOUT_S: z.coerce.number().positive().max(86_400),
});

/**
 * The promotion gate's settings from the configuration: the margin, the recall tolerance
 * and the `above-chance` minimum (`REELSET_PROMOTION_MIN_SCORE` when the deprecated name is
 * set, else `REELSET_PROMOTION_MIN_LOWER_BOUND`); the interval is 95% over 2,000 resamples.
 */
export function gateConfig(
  config: Pick<Config, 'REELSET_PROMOTION_MARGIN' | 'REELSET_PROMOTION_RECALL_TOLERANCE' | 'REELSET_PROMOTION_MIN_LOWER_BOUND' | 'REELSET_PROMOTION_MIN_SCORE'>,
): GateConfig {
  return {
    margin: config.REELSET_PROMOTION_MARGIN,
    recallTolerance: config.REELSET_PROMOTION_RECALL_TOLERANCE,
    minLowerBound: config.REELSET_PROMOTION_MIN_SCORE === '' ? config.REELSET_PROMOTION_MIN_LOWER_BOUND : Number(config.REELSET_PROMOTION_MIN_SCORE),
    confidence: BOOTSTRAP_DEFAULTS.confidence,
    resamples: BOOTSTRAP_DEFAULTS.resamples,
  };
}
export type Config = z.infer<typeof Config>;

/** Variables whose empty value means something (and so is not "unset"). */
const EMPTY_ALLOWED = new Set<string>(['S3_ENDPOINT', 'LABEL_STUDIO_S3_ENDPOINT']);

/** `KEY=VALUE` lines of `infra/defaults.env`, in order, values unexpanded. */
export function readDefaults(file: string = DEFAULTS_FILE): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) rows.push([m[1]!, m[2]!]);
  }
  return rows;
}

/**
 * The environment with every default of `infra/defaults.env` filled in where the
 * variable is unset (or empty, except {@link EMPTY_ALLOWED}), `${NAME}` expanded from
 * the variables resolved so far, as `infra/env.sh` does.
 */
export function withDefaults(env: NodeJS.ProcessEnv, root: string = REELSET_ROOT): Record<string, string> {
  const out: Record<string, string> = { REELSET_ROOT: env['REELSET_ROOT'] || root };
  const isSet = (k: string) => env[k] !== undefined && (env[k] !== '' || EMPTY_ALLOWED.has(k));
  for (const [key, raw] of readDefaults()) {
    out[key] = isSet(key) ? env[key]! : raw.replace(/\$\{([A-Z][A-Z0-9_]*)\}/g, (_, name: string) => out[name] ?? env[name] ?? '');
  }
  return out;
}

/**
 * Parse and validate the configuration from an environment.
 *
 * @param env the environment (default `process.env`); unknown variables are ignored,
 *   unset ones take their default from `infra/defaults.env`.
 * @returns the validated configuration.
 * @throws ConfigError naming each invalid variable and why.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const merged = withDefaults(env);
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(Config.shape)) picked[key] = merged[key];
  const parsed = Config.safeParse(picked);
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${formatIssues(parsed.error, 50)}`);
  return parsed.data;
}

/** Variables whose values are secrets: never printed or logged ({@link redactConfig}). */
export const SECRET_VARIABLES = [
  'S3_SECRET_ACCESS_KEY',
  'LABEL_STUDIO_ADMIN_PASSWORD',
  'LABEL_STUDIO_API_TOKEN',
  'LABEL_STUDIO_WEBHOOK_SECRET',
  'LABEL_STUDIO_S3_SECRET_ACCESS_KEY',
  'TEMPORAL_API_KEY',
] as const satisfies ReadonlyArray<keyof Config>;

/** The configuration with secrets replaced (every {@link SECRET_VARIABLES} entry and the database password), for logging at start. */
export function redactConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config, DATABASE_URL: config.DATABASE_URL.replace(/:[^:@/]+@/, ':***@') };
  for (const k of SECRET_VARIABLES) out[k] = '***';
  return out;
}
