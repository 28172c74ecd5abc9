/**
 * Connection options for a remote Temporal cluster, through @temporalio/envconfig: plain,
 * TLS, mTLS, a private CA, an API key, a TOML profile; the standard TEMPORAL_* names and
 * the earlier ones.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TLSConfig } from '@temporalio/client';
import { ConfigError } from '../../contracts';
import { loadConfig, redactConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal';

const dir = mkdtempSync(path.join(os.tmpdir(), 'reelset-tls-'));
const pem = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};
const noFile = {};
const tlsOf = (o: { tls?: TLSConfig | boolean }) => o.tls as TLSConfig;

test('the local dev server: a plain connection', () => {
  expect(temporalConnectionOptions(loadConfig({}), noFile)).toEqual({ address: '127.0.0.1:7233' });
  expect(temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'false' }), noFile)).toEqual({ address: '127.0.0.1:7233' });
});

test('TLS, mTLS with a private CA (standard names), and an API key', () => {
  const tls = temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'true', TEMPORAL_ADDRESS: 'temporal.internal:7233' }), noFile);
  expect(tls.address).toBe('temporal.internal:7233');
  expect(tls.tls).toBeTruthy();
  expect(tlsOf(tls).clientCertPair).toBeUndefined();
  const m = temporalConnectionOptions(
    loadConfig({
      TEMPORAL_TLS_CLIENT_CERT_PATH: pem('c.pem', 'CERT'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: pem('k.pem', 'KEY'),
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pem('ca.pem', 'CA'),
      TEMPORAL_TLS_SERVER_NAME: 'frontend.internal',
    }),
    noFile,
  );
  expect(Buffer.from(tlsOf(m).clientCertPair!.crt).toString()).toBe('CERT');
  expect(Buffer.from(tlsOf(m).clientCertPair!.key).toString()).toBe('KEY');
  expect(Buffer.from(tlsOf(m).serverRootCACertificate!).toString()).toBe('CA');
  expect(tlsOf(m).serverNameOverride).toBe('frontend.internal');
  const cloud = temporalConnectionOptions(loadConfig({ TEMPORAL_API_KEY: 'secret-key', TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233' }), noFile);
  expect(cloud).toMatchObject({ address: 'eu-west-1.aws.api.temporal.io:7233', apiKey: 'secret-key' });
  expect(cloud.tls).toBeTruthy();
  expect(JSON.stringify(redactConfig(loadConfig({ TEMPORAL_API_KEY: 'secret-key' })))).not.toContain('secret-key');
});

test('the earlier names still work; the standard name wins where both are set', () => {
  const m = temporalConnectionOptions(
    loadConfig({ TEMPORAL_TLS_CERT: pem('c2.pem', 'OLDCERT'), TEMPORAL_TLS_KEY: pem('k2.pem', 'OLDKEY'), TEMPORAL_TLS_CA: pem('ca2.pem', 'OLDCA') }),
    noFile,
  );
  expect(Buffer.from(tlsOf(m).clientCertPair!.crt).toString()).toBe('OLDCERT');
  expect(Buffer.from(tlsOf(m).serverRootCACertificate!).toString()).toBe('OLDCA');
  const both = temporalConnectionOptions(
    loadConfig({ TEMPORAL_TLS_CA: pem('ca3.pem', 'OLD'), TEMPORAL_TLS_SERVER_CA_CERT_PATH: pem('ca4.pem', 'NEW') }),
    noFile,
  );
  expect(Buffer.from(tlsOf(both).serverRootCACertificate!).toString()).toBe('NEW');
});

test('a TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) is read as the SDKs and the CLI read it; the environment wins', () => {
  const file = pem(
    'temporal.toml',
    '[profile.staging]\naddress = "staging.internal:7233"\nnamespace = "staging"\n[profile.staging.grpc_meta]\nx-team = "video"\n',
  );
  // TEMPORAL_ADDRESS is always set by reelset's configuration (its default is the local dev server), so it wins over the profile's.
  const o = temporalConnectionOptions(loadConfig({}), { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' });
  expect(o.address).toBe('127.0.0.1:7233');
  expect(o.metadata).toEqual({ 'x-team': 'video' });
});

test('a certificate without its key, or a file that cannot be read, is a ConfigError naming the variable', () => {
  expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CERT: pem('only.pem', 'C') }), noFile)).toThrow(ConfigError);
  expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CLIENT_CERT_PATH: pem('only2.pem', 'C') }), noFile)).toThrow(
    /TEMPORAL_TLS_CLIENT_CERT_PATH is set without its pair/,
  );
  expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CA: path.join(dir, 'missing.pem') }), noFile)).toThrow(/TEMPORAL_TLS_CA=.*missing\.pem/);
  expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: path.join(dir, 'gone.pem') }), noFile)).toThrow(
    /TEMPORAL_TLS_SERVER_CA_CERT_PATH=.*gone\.pem/,
  );
});
