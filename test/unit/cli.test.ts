/**
 * The CLI without services: usage errors are caught before anything starts, with the
 * field named and exit code 2; help exits 0; JSON errors are machine-readable.
 */
import { main } from '../../cli/reelset';
import type { Client } from '@temporalio/client';
import { EXIT, poller } from '../../cli/common';
import { newCategoryRequest } from '../../cli/commands/runs';

function capture(): { out: string[]; err: string[]; restore: () => void } {
  const out: string[] = [];
  const err: string[] = [];
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  return { out, err, restore: () => (o.mockRestore(), e.mockRestore()) };
}

async function run(...args: string[]) {
  const c = capture();
  try {
    const code = await main(['node', 'reelset', ...args]);
    return { code, out: c.out.join(''), err: c.err.join('') };
  } finally {
    c.restore();
  }
}

describe('reelset CLI exit codes', () => {
  afterEach(() => {
    process.exitCode = undefined;
  });

  it('help exits 0', async () => {
    expect((await run('--help')).code).toBe(EXIT.ok);
  });

  it('an unknown command or option is bad usage (2)', async () => {
    expect((await run('no-such-command')).code).toBe(EXIT.usage);
    expect((await run('new-category', 'coin', '--no-such-option')).code).toBe(EXIT.usage);
  });

  it('--input that is not JSON is bad usage, named, before anything starts', async () => {
    const r = await run('new-category', 'coin', '--input', '{bad');
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/InvalidInputError: --input is not valid JSON/);
  });

  it('an invalid field is named, as JSON with --json', async () => {
    const r = await run('new-category', 'coin', '--input', '{"extract": {"fps": 100}}', '--json');
    expect(r.code).toBe(EXIT.usage);
    const body = JSON.parse(r.out) as { error: { type: string; message: string; retryable: boolean } };
    expect(body.error.type).toBe('InvalidInputError');
    expect(body.error.message).toContain('field "extract.fps"');
    expect(body.error.retryable).toBe(false);
  });

  it('a label the schema refuses is named too', async () => {
    const r = await run('new-category', '../etc', '--json');
    expect(r.code).toBe(EXIT.usage);
    expect(JSON.parse(r.out).error.message).toContain('field "label"');
  });

  it("the request keeps the label from the argument and this machine's GPU queue unless given", () => {
    const { request, input } = newCategoryRequest('Coin', '{"maxNegativeVideos": 2, "label": "ignored"}', 'gpu-here');
    expect(request.label).toBe('Coin');
    expect(input.label).toBe('coin');
    expect(input.gpuTaskQueue).toBe('gpu-here');
    expect(newCategoryRequest('coin', '{"gpuTaskQueue": "other"}', 'gpu-here').input.gpuTaskQueue).toBe('other');
    expect(() => newCategoryRequest('coin', '[1]', 'q')).toThrow(/JSON object/);
  });
});

describe('poller (progress queries while a command waits)', () => {
  it('runs one tick at a time and stop() aborts the one in flight and waits for it to settle', async () => {
    let signal: AbortSignal | undefined;
    const client = { withAbortSignal: (s: AbortSignal, fn: () => Promise<unknown>) => ((signal = s), fn()) } as unknown as Client;
    let running = 0;
    let most = 0;
    let settled = 0;
    const p = poller(client, 5, async () => {
      running++;
      most = Math.max(most, running);
      // A slow query (a gRPC retry under load): it ends when the signal is aborted, or after 60 ms.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 60);
        signal!.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
      running--;
      settled++;
      throw new Error('a failed tick is ignored');
    });
    await new Promise((r) => setTimeout(r, 100));
    await p.stop();
    expect(most).toBe(1);
    expect(signal!.aborted).toBe(true);
    expect(running).toBe(0); // nothing in flight once stop() resolved: the connection may close
    const after = settled;
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(after); // no tick after stop()
  });
});
