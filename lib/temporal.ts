/**
 * How workers, the labelling gateway and the CLI connect to Temporal: the standard client
 * configuration of Temporal's SDKs and CLI (`@temporalio/envconfig`: the `TEMPORAL_*`
 * environment variables, and a TOML profile from `TEMPORAL_CONFIG_FILE` /
 * `TEMPORAL_PROFILE` when given), with reelset's defaults (the local dev server) and its
 * earlier variable names still accepted.
 *
 * Variables (Temporal's reference: "Temporal Client environment configuration"):
 * `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY` (implies TLS),
 * `TEMPORAL_TLS` (`true` / `false`), `TEMPORAL_TLS_CLIENT_CERT_PATH` and
 * `TEMPORAL_TLS_CLIENT_KEY_PATH` (mTLS), `TEMPORAL_TLS_SERVER_CA_CERT_PATH` (a private CA),
 * `TEMPORAL_TLS_SERVER_NAME` (SNI). Earlier names, used when the standard one is unset:
 * `TEMPORAL_TLS_CERT`, `TEMPORAL_TLS_KEY`, `TEMPORAL_TLS_CA`.
 */
import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { ConfigError } from '../contracts';
import type { Config } from './config';

/** Connection options shared by `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export interface TemporalConnectionOptions {
  address: string;
  /** TLS settings (`true`: TLS with the system's CAs); absent or `false` for a plain connection (the local dev server). */
  tls?: TLSConfig | boolean;
  /** Temporal Cloud API key (sent as a bearer token; implies TLS). */
  apiKey?: string;
  /** gRPC metadata from a TOML profile (`grpc_meta`). */
  metadata?: Record<string, string>;
}

/** The standard variable, the earlier name reelset accepted for it, and what it is. */
const FILES = [
  ['TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CERT'],
  ['TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_KEY'],
  ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_CA'],
] as const;

type TemporalConfig = Pick<
  Config,
  | 'TEMPORAL_ADDRESS'
  | 'TEMPORAL_NAMESPACE'
  | 'TEMPORAL_TLS'
  | 'TEMPORAL_API_KEY'
  | 'TEMPORAL_TLS_SERVER_NAME'
  | 'TEMPORAL_TLS_CLIENT_CERT_PATH'
  | 'TEMPORAL_TLS_CLIENT_KEY_PATH'
  | 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'
  | 'TEMPORAL_TLS_CERT'
  | 'TEMPORAL_TLS_KEY'
  | 'TEMPORAL_TLS_CA'
>;

/**
 * Connection options from the configuration, through `@temporalio/envconfig`'s
 * `loadClientConnectConfig`: a plain connection when no TLS variable, certificate, CA or
 * API key is set; TLS when any is (unless `TEMPORAL_TLS=false`).
 *
 * @param env where `TEMPORAL_CONFIG_FILE` and `TEMPORAL_PROFILE` are read (default `process.env`).
 * @throws ConfigError naming the variable when a certificate file cannot be read, or when
 *   only one of the client certificate and its key is given.
 */
export function temporalConnectionOptions(config: TemporalConfig, env: NodeJS.ProcessEnv = process.env): TemporalConnectionOptions {
  const vars: Record<string, string> = { TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE };
  if (config.TEMPORAL_TLS !== undefined) vars['TEMPORAL_TLS'] = String(config.TEMPORAL_TLS);
  if (config.TEMPORAL_API_KEY) vars['TEMPORAL_API_KEY'] = config.TEMPORAL_API_KEY;
  if (config.TEMPORAL_TLS_SERVER_NAME) vars['TEMPORAL_TLS_SERVER_NAME'] = config.TEMPORAL_TLS_SERVER_NAME;
  const named: Record<string, string> = {};
  for (const [standard, earlier] of FILES) {
    const file = config[standard] || config[earlier];
    if (!file) continue;
    const variable = config[standard] ? standard : earlier;
    try {
      readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${variable}=${file}: cannot read it (${(err as Error).message})`);
    }
    vars[standard] = file;
    named[standard] = variable;
  }
  if (Boolean(vars['TEMPORAL_TLS_CLIENT_CERT_PATH']) !== Boolean(vars['TEMPORAL_TLS_CLIENT_KEY_PATH'])) {
    const given = named['TEMPORAL_TLS_CLIENT_CERT_PATH'] ?? named['TEMPORAL_TLS_CLIENT_KEY_PATH'];
    throw new ConfigError(
      `${given} is set without its pair: a client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH) and its key (TEMPORAL_TLS_CLIENT_KEY_PATH) go together (mTLS), or neither`,
    );
  }
  for (const k of ['TEMPORAL_CONFIG_FILE', 'TEMPORAL_PROFILE'] as const) if (env[k]) vars[k] = env[k]!;
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: vars, profile: env['TEMPORAL_PROFILE'] || undefined });
  } catch (err) {
    throw new ConfigError(`Temporal client configuration: ${(err as Error).message}`);
  }
  const c = loaded.connectionOptions;
  return {
    address: c.address ?? config.TEMPORAL_ADDRESS,
    ...(c.tls ? { tls: c.tls } : {}),
    ...(c.apiKey ? { apiKey: c.apiKey } : {}),
    ...(c.metadata && Object.keys(c.metadata).length ? { metadata: c.metadata as Record<string, string> } : {}),
  };
}
