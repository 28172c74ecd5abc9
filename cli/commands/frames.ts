/**
 * `reelset frames <video> --out <dir>`: the extraction a worker runs, on a local file,
 * with no service (no S3, no PostgreSQL, no Temporal): what people reach for when a file
 * misbehaves. Frames and a manifest go to the folder; the probe (chosen stream and why,
 * colour facts, scan type, duration), the frames and anything dropped or suspicious are
 * printed.
 */
import type { Command } from 'commander';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { extractFrames, framesManifest, probeVideo, type FrameQuality } from '../../activities/frames';
import { formatIssues, type DropCounts, type FrameRecord, type SamplingPlan, type VideoFramesManifest, type VideoProbe } from '../../contracts';
import { ExtractOptions } from '../../contracts/inputs';
import { loadConfig } from '../../lib/config';
import { sha256File } from '../../lib/hash';
import { parseJsonOption, printJson, UsageError } from '../common';

/** The manifest `reelset frames` writes: a video's frames manifest plus where the file and each frame are. */
export interface LocalFramesManifest extends VideoFramesManifest {
  /** The video file, as given. */
  source: string;
  /** Frame files in the output folder, by frame key. */
  files: Record<string, string>;
  /** Frames the quality filters dropped, in sample order. */
  droppedFrames: Array<{ index: number; timestampS: number; reason: keyof DropCounts; quality: FrameQuality }>;
  /** What looks off about the file (see {@link suspicions}). */
  warnings: string[];
}

/** Options of the command line. */
interface FramesOptions {
  out: string;
  mode?: string;
  fps?: string;
  count?: string;
  max?: string;
  shortSide?: string;
  format?: string;
  options: string;
  json?: boolean;
}

/**
 * The extraction options of the command line: `--options` JSON, then the single options,
 * validated by the workflow's own schema.
 *
 * @throws UsageError naming the option or field that is wrong.
 */
export function framesOptions(o: Omit<FramesOptions, 'out' | 'json'>): ExtractOptions {
  const extra = parseJsonOption(o.options, '--options');
  if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new UsageError('--options must be a JSON object, e.g. \'{"sceneThreshold": 0.4}\'');
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`${name} must be a number, got ${JSON.stringify(v)}`);
    return n;
  };
  const given = {
    ...(extra as object),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
    ...(o.fps !== undefined ? { fps: num(o.fps, '--fps') } : {}),
    ...(o.count !== undefined ? { count: num(o.count, '--count') } : {}),
    ...(o.max !== undefined ? { maxFramesPerVideo: num(o.max, '--max') } : {}),
    ...(o.shortSide !== undefined ? { shortSide: num(o.shortSide, '--short-side') } : {}),
    ...(o.format !== undefined ? { format: o.format } : {}),
  };
  const parsed = ExtractOptions.safeParse(given);
  if (!parsed.success) throw new UsageError(`invalid extraction options: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

/**
 * What a person should know about a file beyond its frames: streams skipped, colour tags
 * assumed, HDR tone-mapped, interlaced, non-square pixels, rotation, a late or negative
 * start, decoder complaints, fewer frames than planned, frames dropped.
 */
export function suspicions(
  probe: VideoProbe,
  plan: SamplingPlan,
  r: { sampled: number; dropped: DropCounts; decodeErrorCount: number; decodeErrors: string[] },
): string[] {
  const w: string[] = [];
  const skipped = probe.stream.streams.filter((s) => s.skipped);
  if (skipped.length) w.push(`video streams skipped: ${skipped.map((s) => `${s.index} (${s.skipped})`).join(', ')}`);
  if (probe.stream.streams.length - skipped.length > 1)
    w.push(`${probe.stream.streams.length - skipped.length} candidate video streams; chose ${probe.stream.index}`);
  if (probe.colour.assumed.length) w.push(`colour tags missing, assumed: ${probe.colour.assumed.map((k) => `${k} ${probe.colour[k]}`).join(', ')}`);
  if (probe.colour.dynamicRange !== 'sdr') {
    const h = probe.colour.hdr;
    w.push(
      `HDR (${probe.colour.dynamicRange.toUpperCase()}): tone-mapped to SDR from a peak of ${Math.round((h?.toneMapPeak ?? 10) * 100)} nits (measured ${h?.measuredPeakNits ?? '-'}, metadata ${h?.metadataPeakNits ?? '-'})`,
    );
  } else if (probe.colour.conversion === 'zscale') w.push(`wide-gamut primaries (${probe.colour.primaries}) converted to BT.709`);
  if (probe.colour.bitDepth > 8) w.push(`${probe.colour.bitDepth}-bit source reduced to 8 bits`);
  if (probe.scan.interlaced)
    w.push(`interlaced (${probe.scan.fieldOrder}, ${probe.scan.source === 'idet' ? 'detected by idet: the stream does not say' : 'declared'}): deinterlaced`);
  if (probe.sampleAspectRatio !== '1:1')
    w.push(`non-square pixels (SAR ${probe.sampleAspectRatio}): frames at the display aspect ${probe.displayWidth}x${probe.displayHeight}`);
  if (probe.rotation) w.push(`rotated ${probe.rotation} degrees by its display matrix: frames upright`);
  if (probe.startTimeS !== 0) w.push(`container starts at ${probe.startTimeS} s: timestamps count from there`);
  if (probe.streamStartS > 0.5) w.push(`the video starts ${probe.streamStartS} s into the file`);
  if (probe.frameRate === undefined) w.push('no usable frame rate in the file');
  if (r.decodeErrorCount) w.push(`${r.decodeErrorCount} decoder complaints, e.g. ${r.decodeErrors[0] ?? ''}`);
  const expected = plan.mode === 'fps' || plan.mode === 'count' ? Math.min(plan.maxFrames, Math.floor(probe.durationS * plan.rate! + 1e-9) + 1) : undefined;
  if (expected !== undefined && r.sampled < expected - 1)
    w.push(`sampled ${r.sampled} frames where about ${expected} were planned: the video has fewer frames than its duration says`);
  const dropped = r.dropped.nearBlack + r.dropped.nearWhite + r.dropped.blurred;
  if (dropped)
    w.push(
      `${dropped} of ${r.sampled} sampled frames dropped (near-black ${r.dropped.nearBlack}, near-white ${r.dropped.nearWhite}, blurred ${r.dropped.blurred})`,
    );
  return w;
}

function describeProbeLines(probe: VideoProbe): string[] {
  const c = probe.colour;
  const hdr = c.hdr
    ? `; peak ${Math.round(c.hdr.toneMapPeak * 100)} nits (measured ${c.hdr.measuredPeakNits ?? '-'}, metadata ${c.hdr.metadataPeakNits ?? '-'})`
    : '';
  return [
    `stream:    ${probe.stream.reason}`,
    `video:     ${probe.codec} ${probe.width}x${probe.height}, display ${probe.displayWidth}x${probe.displayHeight} (SAR ${probe.sampleAspectRatio}, rotation ${probe.rotation}), ${probe.frameRate?.toFixed(3) ?? 'unknown'} frames/s, ${probe.durationS.toFixed(3)} s, starts at ${probe.startTimeS} s${probe.hasAudio ? ', with audio' : ''}`,
    `colour:    ${c.pixelFormat} ${c.bitDepth}-bit ${c.range} range, matrix ${c.matrix}, transfer ${c.transfer}, primaries ${c.primaries}${c.assumed.length ? ` (assumed: ${c.assumed.join(', ')})` : ''} -> ${c.conversion}${hdr}`,
    `scan:      ${probe.scan.interlaced ? `interlaced ${probe.scan.fieldOrder}` : 'progressive'} (${probe.scan.source}${probe.scan.idet ? `: idet tff ${probe.scan.idet.tff}, bff ${probe.scan.idet.bff}, progressive ${probe.scan.idet.progressive}, undetermined ${probe.scan.idet.undetermined}` : ''})`,
  ];
}

/** Register `frames`. */
export function registerFramesCommands(program: Command): void {
  program
    .command('frames')
    .description(
      'extract frames of a local video file into a folder, with no service (the code a worker runs); prints the probe, the frames and anything suspicious',
    )
    .argument('<video>', 'the video file')
    .requiredOption('--out <dir>', 'folder for the frames and manifest.json (created)')
    .option('--mode <mode>', 'fps, scene, keyframes or count (default fps)')
    .option('--fps <n>', 'fps mode: frames per second (default 1)')
    .option('--count <n>', 'count mode: frames spread evenly (default 16)')
    .option('--max <n>', 'most frames (default 60)')
    .option('--short-side <px>', 'short side of the frames (default 256)')
    .option('--format <format>', 'jpeg or webp (default jpeg)')
    .option('--options <json>', 'any other extraction option as JSON, e.g. \'{"sceneThreshold": 0.4, "blackLevel": 0}\'', '{}')
    .option('--json', 'print the result as JSON')
    .action(async (video: string, opts: FramesOptions) => {
      const options = framesOptions(opts);
      const config = loadConfig();
      const file = path.resolve(video);
      const probe = await probeVideo(file, { ffprobePath: config.FFPROBE_PATH, ffmpegPath: config.FFMPEG_PATH, timeoutMs: config.FFPROBE_TIMEOUT_S * 1000 });
      const sha = await sha256File(file);
      const out = path.resolve(opts.out);
      await fs.mkdir(out, { recursive: true });
      const files: Record<string, string> = {};
      const droppedFrames: LocalFramesManifest['droppedFrames'] = [];
      const ac = new AbortController();
      const stop = () => ac.abort(new Error('interrupted'));
      process.once('SIGINT', stop);
      let result;
      try {
        result = await extractFrames(
          file,
          sha,
          probe,
          options,
          {
            has: () => false,
            put: async (frame: FrameRecord, bytes: Buffer) => {
              const name = path.basename(frame.key);
              await fs.writeFile(path.join(out, name), bytes);
              files[frame.key] = name;
            },
          },
          {
            ffmpegPath: config.FFMPEG_PATH,
            stallTimeoutMs: config.FFMPEG_STALL_TIMEOUT_S * 1000,
            signal: ac.signal,
            onDropped: (d) => droppedFrames.push(d),
          },
        );
      } finally {
        process.removeListener('SIGINT', stop);
      }
      droppedFrames.sort((a, b) => a.index - b.index);
      const warnings = suspicions(probe, result.plan, result);
      const manifest: LocalFramesManifest = {
        ...framesManifest({ videoId: path.basename(file), videoSha256: sha, options, probe }, result),
        source: file,
        files,
        droppedFrames,
        warnings,
      };
      const manifestFile = path.join(out, 'manifest.json');
      await fs.writeFile(manifestFile, `${JSON.stringify(manifest, null, 1)}\n`);
      if (opts.json) {
        printJson({ manifest: manifestFile, ...manifest });
        return;
      }
      const lines = [`video:     ${file} (sha256 ${sha.slice(0, 16)}...)`, ...describeProbeLines(probe)];
      const plan = result.plan;
      lines.push(
        `sampling:  ${plan.mode}, ${plan.kind === 'bucket' ? `${plan.rate!.toFixed(4)} frames/s` : `at least ${plan.gapS!.toFixed(3)} s apart${plan.sceneThreshold !== undefined ? `, scene score > ${plan.sceneThreshold}` : ''}`}, at most ${plan.maxFrames}; short side ${options.shortSide}, ${options.format} q${options.quality}`,
        '',
        `frames:    ${result.frames.length} kept of ${result.sampled} sampled, in ${out}`,
        `  ${'#'.padStart(4)}  ${'time s'.padStart(10)}  ${'size'.padStart(9)}  ${'bytes'.padStart(7)}  ${'sharpness'.padStart(10)}  ${'brightness'.padStart(10)}  file`,
        ...result.frames.map(
          (f) =>
            `  ${String(f.index).padStart(4)}  ${f.timestampS.toFixed(3).padStart(10)}  ${`${f.width}x${f.height}`.padStart(9)}  ${String(f.bytes).padStart(7)}  ${f.sharpness.toFixed(1).padStart(10)}  ${f.brightness.toFixed(1).padStart(10)}  ${files[f.key]}`,
        ),
      );
      if (droppedFrames.length) {
        lines.push(
          '',
          'dropped:',
          ...droppedFrames.map(
            (d) =>
              `  ${String(d.index).padStart(4)}  ${d.timestampS.toFixed(3).padStart(10)}  ${d.reason} (luma p01 ${d.quality.p01}, p99 ${d.quality.p99}, mean ${d.quality.brightness.toFixed(1)}, sharpness ${d.quality.sharpness.toFixed(1)})`,
          ),
        );
      }
      lines.push('', warnings.length ? 'suspicious:' : 'suspicious: nothing', ...warnings.map((w) => `  - ${w}`));
      if (result.decodeErrors.length > 1) lines.push('decoder complaints (first ones):', ...result.decodeErrors.map((e) => `  ${e}`));
      lines.push('', `manifest:  ${manifestFile}`);
      console.log(lines.join('\n'));
    });
}
