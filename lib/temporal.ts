/**
 * How workers and the CLI connect to Temporal: the address, and for a remote cluster TLS
 * (server verified by the system's CAs or `TEMPORAL_TLS_CA`), a client certificate (mTLS,
 * self-hosted clusters and Temporal Cloud) or an API key (Temporal Cloud).
 */
import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import { ConfigError } from '../contracts';
import type { Config } from './config';

/** Connection options shared by `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export interface TemporalConnectionOptions {
  address: string;
  /** TLS settings; absent for a plain connection (the local dev server). */
  tls?: TLSConfig;
  /** Temporal Cloud API key (sent as a bearer token; implies TLS). */
  apiKey?: string;
}

function readPem(file: string, variable: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${variable}=${file}: cannot read it (${(err as Error).message})`);
  }
}

/**
 * Connection options from the configuration: plain when none of `TEMPORAL_TLS`,
 * `TEMPORAL_TLS_CERT` / `TEMPORAL_TLS_KEY`, `TEMPORAL_TLS_CA` and `TEMPORAL_API_KEY` is
 * set; TLS when any is.
 *
 * @throws ConfigError naming the variable when a certificate file cannot be read, or when
 *   only one of the client certificate and its key is given.
 */
export function temporalConnectionOptions(config: Pick<Config, 'TEMPORAL_ADDRESS' | 'TEMPORAL_TLS' | 'TEMPORAL_TLS_CERT' | 'TEMPORAL_TLS_KEY' | 'TEMPORAL_TLS_CA' | 'TEMPORAL_API_KEY'>): TemporalConnectionOptions {
  const { TEMPORAL_TLS_CERT: cert, TEMPORAL_TLS_KEY: key, TEMPORAL_TLS_CA: ca, TEMPORAL_API_KEY: apiKey } = config;
  if (Boolean(cert) !== Boolean(key)) throw new ConfigError('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both (mTLS) or neither');
  const useTls = config.TEMPORAL_TLS || Boolean(cert) || Boolean(ca) || Boolean(apiKey);
  if (!useTls) return { address: config.TEMPORAL_ADDRESS };
  const tls: TLSConfig = {
    ...(ca ? { serverRootCACertificate: readPem(ca, 'TEMPORAL_TLS_CA') } : {}),
    ...(cert && key ? { clientCertPair: { crt: readPem(cert, 'TEMPORAL_TLS_CERT'), key: readPem(key, 'TEMPORAL_TLS_KEY') } } : {}),
  };
  return { address: config.TEMPORAL_ADDRESS, tls, ...(apiKey ? { apiKey } : {}) };
}
