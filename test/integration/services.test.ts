import { requireServices, SHARED_CATALOG, uniqueSuffix } from '../helpers/services';
import { existsSync } from 'node:fs';

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
