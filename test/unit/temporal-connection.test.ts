/** Connection options for a remote Temporal cluster: plain, TLS, mTLS, a private CA, an API key. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../contracts';
import { loadConfig, redactConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal';

const dir = mkdtempSync(path.join(os.tmpdir(), 'reelset-tls-'));
const pem = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};

test('the local dev server: a plain connection', () => {
  expect(temporalConnectionOptions(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
});

test('TLS, mTLS with a private CA, and an API key', () => {
  expect(temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'true', TEMPORAL_ADDRESS: 'temporal.internal:7233' }))).toEqual({ address: 'temporal.internal:7233', tls: {} });
  const m = temporalConnectionOptions(
    loadConfig({ TEMPORAL_TLS_CERT: pem('c.pem', 'CERT'), TEMPORAL_TLS_KEY: pem('k.pem', 'KEY'), TEMPORAL_TLS_CA: pem('ca.pem', 'CA') }),
  );
  expect(Buffer.from(m.tls!.clientCertPair!.crt).toString()).toBe('CERT');
  expect(Buffer.from(m.tls!.clientCertPair!.key).toString()).toBe('KEY');
  expect(Buffer.from(m.tls!.serverRootCACertificate!).toString()).toBe('CA');
  const cloud = temporalConnectionOptions(loadConfig({ TEMPORAL_API_KEY: 'secret-key', TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233' }));
  expect(cloud).toEqual({ address: 'eu-west-1.aws.api.temporal.io:7233', tls: {}, apiKey: 'secret-key' });
  expect(JSON.stringify(redactConfig(loadConfig({ TEMPORAL_API_KEY: 'secret-key' })))).not.toContain('secret-key');
});

test('a certificate without its key, or a file that cannot be read, is a ConfigError naming the variable', () => {
  expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CERT: pem('only.pem', 'C') }))).toThrow(ConfigError);
  expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CA: path.join(dir, 'missing.pem') }))).toThrow(/TEMPORAL_TLS_CA=.*missing\.pem/);
});
