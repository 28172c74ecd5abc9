import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../lib/config';
import { requireLabelStudio, requireServices, SHARED_CATALOG, uniqueSuffix } from '../helpers/services';

jest.setTimeout(60_000);

describe('test/helpers/services', () => {
  it('requireServices connects to the running Postgres and S3', async () => {
    const svc = await requireServices();
    try {
      const r = await svc.pool.query<{ one: number }>('SELECT 1 AS one');
      expect(r.rows[0]!.one).toBe(1);
      expect(await svc.store.list(`no-such-prefix-${uniqueSuffix()}/`)).toEqual([]);
    } finally {
      await svc.close();
      await svc.close(); // idempotent
    }
  });

  it('throws a clear error when PostgreSQL is down (tests fail, never skip)', async () => {
    const env = { ...process.env, DATABASE_URL: 'postgres://reelset:pw@127.0.0.1:1/reelset' };
    const err = await requireServices(env).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^PostgreSQL not reachable at postgres:\/\/reelset:\*\*\*@127\.0\.0\.1:1\/reelset/);
    expect(err?.message).toContain('bash infra/services.sh start');
  });

  it('throws a clear error when S3 is down', async () => {
    const env = { ...process.env, S3_ENDPOINT: 'http://127.0.0.1:1' };
    const err = await requireServices(env).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^S3 not reachable at http:\/\/127\.0\.0\.1:1/);
    expect(err?.message).toContain('bash infra/services.sh start');
  });

  it('uniqueSuffix is unique and safe in ids and keys; the shared catalog is found repo-relative', () => {
    const a = new Set(Array.from({ length: 100 }, () => uniqueSuffix()));
    expect(a.size).toBe(100);
    for (const s of a) expect(s).toMatch(/^[a-z0-9-]+$/);
    expect(existsSync(SHARED_CATALOG)).toBe(true);
  });
});

describe('Label Studio as a service', () => {
  it('requireLabelStudio connects with the configured token; a missing server fails with its address and how to start it', async () => {
    const ls = await requireLabelStudio();
    expect((await ls.whoami()).email).toBe(loadConfig().LABEL_STUDIO_ADMIN_EMAIL);
    const err = await requireLabelStudio({ ...process.env, LABEL_STUDIO_URL: 'http://127.0.0.1:1' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^Label Studio not reachable at http:\/\/127\.0\.0\.1:1/);
    expect(err?.message).toContain('bash infra/services.sh start label-studio');
  });

  it('webhooks may go to loopback, never to the cloud metadata range (169.254.0.0/16)', async () => {
    const ls = await requireLabelStudio();
    const project = await ls.createProject({ title: `services-test-${uniqueSuffix()}` });
    try {
      const hook = { project: project.id, send_payload: false, send_for_all_actions: false, headers: {}, actions: ['ANNOTATION_CREATED'] };
      await expect(ls.createWebhook({ ...hook, url: 'http://127.0.0.1:9/hook' })).resolves.toMatchObject({ url: 'http://127.0.0.1:9/hook' });
      await expect(ls.createWebhook({ ...hook, url: 'http://169.254.169.254/latest/meta-data/' })).rejects.toThrow(/403/);
    } finally {
      await ls.deleteProject(project.id);
    }
  });

  it('its token and admin password are in neither its log nor its command line', () => {
    const c = loadConfig();
    const log = readFileSync(path.join(c.REELSET_LOG_DIR, 'label-studio.log'), 'utf8');
    const pid = readFileSync(path.join(c.REELSET_RUN_DIR, 'label-studio.pid'), 'utf8').trim();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    expect(cmdline).toContain('label-studio start');
    for (const secret of [c.LABEL_STUDIO_API_TOKEN, c.LABEL_STUDIO_ADMIN_PASSWORD]) {
      expect(log).not.toContain(secret);
      expect(cmdline).not.toContain(secret);
    }
  });
});
