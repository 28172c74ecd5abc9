import { ConfigError } from '../../contracts';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Config, gateConfig, loadConfig, readDefaults, redactConfig, REELSET_ROOT, SECRET_VARIABLES } from '../../lib/config';

describe('loadConfig', () => {
  it('fills every default from an empty environment', () => {
    const c = loadConfig({});
    expect(c.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(c.TEMPORAL_NAMESPACE).toBe('default');
    expect(c.DATABASE_URL).toBe('postgres://reelset@127.0.0.1:55432/reelset');
    expect(c.S3_ENDPOINT).toBe('http://127.0.0.1:7070');
    expect(c.S3_BUCKET).toBe('reelset');
    expect(c.S3_FORCE_PATH_STYLE).toBe(true);
    expect(c.S3_MAX_SOCKETS).toBe(16);
    expect(c.REELSET_MAX_CONCURRENT_ACTIVITIES).toBe(4);
    expect(c.REELSET_TF_BACKEND).toBe('auto');
    expect(c.REELSET_VIDEO_TASK_QUEUE).toBe('reelset-video');
    expect(c.REELSET_GPU_TASK_QUEUE).toBe('reelset-gpu');
    expect(c.FFMPEG_PATH).toBe('ffmpeg');
  });

  it('takes overrides, coerces numbers and booleans, ignores unknown and empty variables', () => {
    const c = loadConfig({
      S3_BUCKET: 'other',
      S3_MAX_SOCKETS: '3',
      S3_FORCE_PATH_STYLE: '0',
      REELSET_LOG_LEVEL: 'debug',
      TEMPORAL_ADDRESS: '',
      SOMETHING_ELSE: 'x',
    });
    expect(c.S3_BUCKET).toBe('other');
    expect(c.S3_MAX_SOCKETS).toBe(3);
    expect(c.S3_FORCE_PATH_STYLE).toBe(false);
    expect(c.REELSET_LOG_LEVEL).toBe('debug');
    expect(c.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(c).not.toHaveProperty('SOMETHING_ELSE');
    expect(loadConfig({ S3_FORCE_PATH_STYLE: 'true' }).S3_FORCE_PATH_STYLE).toBe(true);
  });

  it.each([
    ['S3_MAX_SOCKETS', 'many'],
    ['S3_MAX_SOCKETS', '0'],
    ['REELSET_MAX_CONCURRENT_ACTIVITIES', '1.5'],
    ['S3_FORCE_PATH_STYLE', 'yes'],
    ['REELSET_TF_BACKEND', 'cuda'],
    ['REELSET_LOG_LEVEL', 'loud'],
  ])('rejects %s=%s with a ConfigError naming the variable', (name, value) => {
    let err: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).name).toBe('ConfigError');
    expect((err as Error).message).toContain(name);
  });

  it('names every invalid variable at once', () => {
    expect(() => loadConfig({ S3_MAX_SOCKETS: 'x', REELSET_TF_BACKEND: 'y' })).toThrow(/S3_MAX_SOCKETS.*REELSET_TF_BACKEND|REELSET_TF_BACKEND.*S3_MAX_SOCKETS/);
  });
});

describe('infra/defaults.env and the Config schema', () => {
  it('list the same variables (every variable has a default and a type)', () => {
    expect(
      readDefaults()
        .map(([k]) => k)
        .sort(),
    ).toEqual(Object.keys(Config.shape).sort());
  });

  it('Label Studio defaults: its own port and URL, the gateway, the webhook URL pointing at the gateway', () => {
    const c = loadConfig({ LABEL_STUDIO_PORT: '18080', LABEL_STUDIO_GATEWAY_PORT: '18091' });
    expect(c.LABEL_STUDIO_URL).toBe('http://127.0.0.1:18080');
    expect(c.LABEL_STUDIO_WEBHOOK_URL).toBe('http://127.0.0.1:18091/webhooks/label-studio');
    expect(c.LABEL_STUDIO_S3_ENDPOINT).toBe(c.S3_ENDPOINT);
    expect(loadConfig({ S3_SECRET_ACCESS_KEY: 'k2' }).LABEL_STUDIO_S3_SECRET_ACCESS_KEY).toBe('k2');
    expect(() => loadConfig({ LABEL_STUDIO_URL: 'not a url' })).toThrow(/LABEL_STUDIO_URL/);
    expect(() => loadConfig({ LABEL_STUDIO_DATABASE: 'Label-Studio' })).toThrow(/LABEL_STUDIO_DATABASE/);
  });
});

describe('gateConfig', () => {
  it('the above-chance minimum is REELSET_PROMOTION_MIN_LOWER_BOUND (default 0.6), over a 95% interval of 2,000 resamples', () => {
    expect(gateConfig(loadConfig({}))).toEqual({ margin: 0.02, recallTolerance: 0.05, minLowerBound: 0.6, confidence: 0.95, resamples: 2000 });
    expect(gateConfig(loadConfig({ REELSET_PROMOTION_MIN_LOWER_BOUND: '0' })).minLowerBound).toBe(0);
    expect(() => loadConfig({ REELSET_PROMOTION_MIN_LOWER_BOUND: '1.5' })).toThrow(/REELSET_PROMOTION_MIN_LOWER_BOUND/);
  });

  it('the deprecated REELSET_PROMOTION_MIN_SCORE, when set, is used in its place (a deployment keeps its choice)', () => {
    expect(loadConfig({}).REELSET_PROMOTION_MIN_SCORE).toBe('');
    expect(gateConfig(loadConfig({ REELSET_PROMOTION_MIN_SCORE: '0' })).minLowerBound).toBe(0);
    expect(gateConfig(loadConfig({ REELSET_PROMOTION_MIN_SCORE: '0.7', REELSET_PROMOTION_MIN_LOWER_BOUND: '0.6' })).minLowerBound).toBe(0.7);
    expect(() => loadConfig({ REELSET_PROMOTION_MIN_SCORE: 'high' })).toThrow(/REELSET_PROMOTION_MIN_SCORE/);
    expect(() => loadConfig({ REELSET_PROMOTION_MIN_SCORE: '2' })).toThrow(/REELSET_PROMOTION_MIN_SCORE/);
  });
});

describe('redactConfig', () => {
  it('hides the Label Studio token, passwords and secrets', () => {
    const c = loadConfig({
      LABEL_STUDIO_API_TOKEN: 'tok-123456789',
      LABEL_STUDIO_ADMIN_PASSWORD: 'admin-pass-123',
      LABEL_STUDIO_WEBHOOK_SECRET: 'hook-secret-12345',
      LABEL_STUDIO_S3_SECRET_ACCESS_KEY: 'ls-s3-secret',
    });
    const text = JSON.stringify(redactConfig(c));
    for (const v of ['tok-123456789', 'admin-pass-123', 'hook-secret-12345', 'ls-s3-secret']) expect(text).not.toContain(v);
    for (const k of SECRET_VARIABLES) expect(redactConfig(c)[k]).toBe('***');
  });

  it('hides the S3 secret and the database password, keeps the rest', () => {
    const c = loadConfig({
      S3_SECRET_ACCESS_KEY: 'super-secret-value',
      DATABASE_URL: 'postgres://user:hunter2@db.example:5432/reelset',
    });
    const r = redactConfig(c);
    const text = JSON.stringify(r);
    expect(text).not.toContain('super-secret-value');
    expect(text).not.toContain('hunter2');
    expect(r.S3_SECRET_ACCESS_KEY).toBe('***');
    expect(r.DATABASE_URL).toBe('postgres://user:***@db.example:5432/reelset');
    expect(r.S3_ACCESS_KEY_ID).toBe(c.S3_ACCESS_KEY_ID);
    expect(r.S3_BUCKET).toBe(c.S3_BUCKET);
    // The input is not mutated.
    expect(c.S3_SECRET_ACCESS_KEY).toBe('super-secret-value');
  });

  it('leaves a password-less DATABASE_URL unchanged', () => {
    const r = redactConfig(loadConfig({ DATABASE_URL: 'postgres://reelset@127.0.0.1:55432/reelset' }));
    expect(r.DATABASE_URL).toBe('postgres://reelset@127.0.0.1:55432/reelset');
  });
});

describe('one place for every default', () => {
  it('infra/defaults.env and the schema name the same variables', () => {
    expect(
      readDefaults()
        .map(([k]) => k)
        .sort(),
    ).toEqual(Object.keys(Config.shape).sort());
  });

  it('infra/env.sh and loadConfig resolve every variable to the same value', () => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in Config.shape) && k !== 'REELSET_ROOT'));
    const cases: NodeJS.ProcessEnv[] = [{}, { PG_PORT: '1234', REELSET_DATA_DIR: '/tmp/elsewhere', S3_ENDPOINT: '' }];
    for (const extra of cases) {
      const out = execFileSync('bash', ['-c', 'source infra/env.sh && env -0'], { cwd: REELSET_ROOT, env: { ...clean, ...extra } }).toString('utf8');
      const fromShell = Object.fromEntries(
        out
          .split('\0')
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      const fromCode = loadConfig(extra);
      // An empty default is left unset in the shell (a set-but-empty TLS variable turns TLS on in the Temporal CLI).
      for (const key of Object.keys(Config.shape)) expect([key, String(fromCode[key as keyof typeof fromCode] ?? '')]).toEqual([key, fromShell[key] ?? '']);
    }
  });

  it("the data directory is the checkout's .data, whatever the working directory", () => {
    expect(loadConfig({}).REELSET_DATA_DIR).toBe(path.join(REELSET_ROOT, '.data'));
    expect(loadConfig({ PG_PORT: '1234' }).DATABASE_URL).toBe('postgres://reelset@127.0.0.1:1234/reelset');
    expect(loadConfig({ S3_ENDPOINT: '' }).S3_ENDPOINT).toBe('');
  });
});
