/**
 * `reelset frames` as a person runs it: a subprocess on a local file, with every service
 * address pointing at a closed port (it must need none), frames and a manifest in the
 * folder, the probe and warnings printed, exit codes for unusable files and bad usage.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import type { LocalFramesManifest } from '../../cli/commands/frames';
import { REPO_ROOT } from '../helpers/services';

jest.setTimeout(120_000);

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'reelset-cli-frames-'));
});
afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** No service reachable: closed ports on loopback for Temporal, PostgreSQL and S3. */
const noServices = {
  ...process.env,
  TEMPORAL_ADDRESS: '127.0.0.1:1',
  DATABASE_URL: 'postgres://x@127.0.0.1:1/x',
  S3_ENDPOINT: 'http://127.0.0.1:1',
  NODE_NO_WARNINGS: '1',
};

function reelset(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'cli/bin.js'), ...args], { cwd: tmp, env: noServices, encoding: 'utf8', timeout: 100_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ff(args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { stdio: 'pipe' });
}

test('frames of a local file with a picture stream first and an interlaced video: folder, manifest, JSON, with no service', async () => {
  const video = path.join(tmp, 'clip with still.mkv');
  ff([
    '-f',
    'lavfi',
    '-i',
    'color=red:size=200x200:d=0.04',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=720x576:rate=50:d=3,scroll=horizontal=0.01,tinterlace=mode=interleave_top,setfield=tff',
    '-map',
    '0:v',
    '-map',
    '1:v',
    '-c:v:0',
    'mjpeg',
    '-c:v:1',
    'libx264',
    '-preset',
    'ultrafast',
    '-flags:v:1',
    '+ildct+ilme',
    '-top:v:1',
    '1',
    '-pix_fmt:v:1',
    'yuv420p',
    video,
  ]);
  const out = path.join(tmp, 'out');
  const r = reelset(['frames', video, '--out', out, '--mode', 'count', '--count', '5', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const printed = JSON.parse(r.stdout) as LocalFramesManifest & { manifest: string };
  expect(printed.manifest).toBe(path.join(out, 'manifest.json'));
  const manifest = JSON.parse(await fs.readFile(printed.manifest, 'utf8')) as LocalFramesManifest;
  expect(manifest.probe.stream.index).toBe(1);
  expect(manifest.probe.stream.reason).toMatch(/skipped stream 0: a still picture/);
  expect(manifest.probe.scan).toMatchObject({ interlaced: true, fieldOrder: 'tt' });
  expect(manifest.plan.mode).toBe('count');
  expect(manifest.frames.map((f) => f.timestampS)).toEqual([0, 0.6, 1.2, 1.8, 2.4]);
  expect(manifest.warnings.some((w) => /interlaced \(tt, declared\): deinterlaced/.test(w))).toBe(true);
  expect(manifest.warnings.some((w) => /video streams skipped: 0 \(a still picture\)/.test(w))).toBe(true);
  expect((await fs.readdir(out)).sort()).toEqual(['000000000.jpg', '000000600.jpg', '000001200.jpg', '000001800.jpg', '000002400.jpg', 'manifest.json']);
  for (const f of manifest.frames) {
    const bytes = await fs.readFile(path.join(out, manifest.files[f.key]!));
    expect(bytes.length).toBe(f.bytes);
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'jpeg', width: 320, height: 256 });
  }
});

test('the human output shows the chosen stream, colour facts, duration, the frames and what was dropped', async () => {
  const video = path.join(tmp, 'fade.mp4');
  // Black for one second, then the pattern: the frames at 0 and 0.76 s are dropped as near-black.
  ff([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=320x240:rate=25:d=3,fade=in:st=1:d=0.04',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-colorspace',
    'bt709',
    '-color_range',
    'tv',
    video,
  ]);
  const r = reelset(['frames', video, '--out', path.join(tmp, 'out2')]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^stream: +stream 0: the only video stream \(h264 320x240, 75 frames, 3\.00 s\)$/m);
  expect(r.stdout).toMatch(/^video: +h264 320x240, display 320x240 .* 3\.000 s/m);
  expect(r.stdout).toMatch(/^colour: +yuv420p 8-bit limited range, matrix bt709, .* -> swscale/m);
  expect(r.stdout).toMatch(/^frames: +2 kept of 4 sampled/m);
  expect(r.stdout).toMatch(/^dropped:\n +0 +0\.000 +nearBlack .*\n +1 +0\.760 +nearBlack/m);
  expect(r.stdout).toMatch(/2 of 4 sampled frames dropped \(near-black 2/);
});

test('an unusable file exits 1 with the error type and reason; bad usage exits 2', async () => {
  const text = path.join(tmp, 'notes.mp4');
  await fs.writeFile(text, 'not a video\n'.repeat(20));
  const r = reelset(['frames', text, '--out', path.join(tmp, 'nope')]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: VideoDecodeError: cannot decode video ".*notes\.mp4": not a readable media file/);
  const j = reelset(['frames', text, '--out', path.join(tmp, 'nope'), '--json']);
  expect(j.code).toBe(1);
  expect(JSON.parse(j.stdout)).toMatchObject({ error: { type: 'VideoDecodeError', retryable: false } });
  const audio = path.join(tmp, 'tone.m4a');
  ff(['-f', 'lavfi', '-i', 'sine=d=1', '-c:a', 'aac', audio]);
  expect(reelset(['frames', audio, '--out', path.join(tmp, 'nope')]).stderr).toMatch(/VideoDecodeError: .*audio only: no video stream/);
  expect(reelset(['frames', text, '--out', path.join(tmp, 'x'), '--mode', 'sometimes']).code).toBe(2);
  expect(reelset(['frames', text]).code).toBe(2); // --out is required
});
