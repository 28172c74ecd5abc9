/**
 * What to sample and at which size, decided before ffmpeg starts: the parameters hash
 * that names the stored frames, the sampling plan of every mode, ffmpeg's `select`
 * expression for it, and the output size. Pure functions of the probe and the options.
 */
import { createHash } from 'node:crypto';
import type { ExtractOptions, SamplingMode, SamplingPlan, VideoProbe } from '../../contracts';

/**
 * Version of the extraction code; part of the parameters hash so a change never
 * overwrites old frames. x2: sampling by ffmpeg's `select` on presentation time
 * (variable frame rate safe) with resizing in ffmpeg; x3: images encoded by ffmpeg,
 * quality scored on its luma plane; x4: the chosen stream (`0:<index>`), 8-bit BT.709 SDR
 * from every colour space (explicit matrix and range, PQ / HLG tone-mapped), interlaced
 * sources deinterlaced, timestamps exact from pts and the time base. The S3 layout is
 * unchanged (one object per frame under `frameKey`).
 */
export const EXTRACTOR_VERSION = 'x4';

/** Hash of everything that changes the stored frames (16 hex chars); fields of other modes do not count. */
export function extractionParamsHash(opts: ExtractOptions): string {
  const sampling: Record<SamplingMode, object> = {
    fps: { fps: opts.fps, min: opts.minFramesPerVideo },
    scene: { th: opts.sceneThreshold, gap: opts.minSceneGapS },
    keyframes: {},
    count: { n: opts.count },
  };
  const o = {
    v: EXTRACTOR_VERSION,
    mode: opts.mode,
    ...sampling[opts.mode],
    max: opts.maxFramesPerVideo,
    side: opts.shortSide,
    fmt: opts.format,
    q: opts.quality,
    black: opts.blackLevel,
    white: opts.whiteLevel,
    minS: opts.minSharpness,
  };
  return createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
}

/**
 * The sampling rate for a video in `fps` mode: `fps`, lowered so at most
 * `maxFramesPerVideo` frames spread over the whole duration, raised for short clips to
 * give `minFramesPerVideo` (never above the video's own frame rate, 30 when unknown).
 *
 * @returns frames per second, finite and > 0.
 */
export function planSamplingRate(probe: Pick<VideoProbe, 'durationS' | 'frameRate'>, opts: ExtractOptions): number {
  const d = Math.max(probe.durationS, 1e-3);
  let r = opts.fps;
  if (d * r > opts.maxFramesPerVideo) r = opts.maxFramesPerVideo / d;
  if (d * r < opts.minFramesPerVideo) r = Math.min(opts.minFramesPerVideo / d, probe.frameRate ?? 30);
  return r;
}

/**
 * Plan the sampling of one video so that every mode respects `maxFramesPerVideo`
 * spread over the whole duration (the gap is raised to duration / cap for scene and
 * keyframes, the bucket rate lowered to cap / duration for fps and count).
 */
export function planSampling(probe: Pick<VideoProbe, 'durationS' | 'frameRate'>, opts: ExtractOptions): SamplingPlan {
  const d = Math.max(probe.durationS, 1e-3);
  const cap = opts.maxFramesPerVideo;
  switch (opts.mode) {
    case 'fps': {
      const rate = planSamplingRate(probe, opts);
      return { mode: 'fps', kind: 'bucket', rate, keyframesOnly: false, maxFrames: Math.max(cap, opts.minFramesPerVideo) };
    }
    case 'count': {
      const n = Math.min(opts.count, cap);
      return { mode: 'count', kind: 'bucket', rate: n / d, keyframesOnly: false, maxFrames: n };
    }
    case 'scene':
      return {
        mode: 'scene',
        kind: 'gap',
        gapS: Math.max(opts.minSceneGapS, d / cap),
        sceneThreshold: opts.sceneThreshold,
        keyframesOnly: false,
        maxFrames: cap,
      };
    case 'keyframes':
      return { mode: 'keyframes', kind: 'gap', gapS: Math.max(0.001, d / cap), keyframesOnly: true, maxFrames: cap };
  }
}

/** Format a number for an ffmpeg expression or option (fixed point, no exponent notation, no trailing zeros). */
export function ffmpegNumber(x: number): string {
  return x.toFixed(9).replace(/\.?0+$/, '') || '0';
}

/**
 * The ffmpeg `select` filter expression of a plan (without quotes).
 *
 * Time is `t + seekS` (ffmpeg's `t` restarts at 0 after an input seek) and the previous
 * pick is `prev_selected_t + seekS`, or `afterS` before the first pick of this process
 * (a resumed attempt passes the last frame it had; a fresh one, none). Picks are
 * strictly increasing in time, so keys derived from timestamps never collide.
 *
 * @see https://ffmpeg.org/ffmpeg-filters.html#select_002c-aselect
 */
export function selectExpression(plan: SamplingPlan, afterS: number | null = null, seekS = 0): string {
  const num = ffmpegNumber;
  const T = seekS ? `(t+${num(seekS)})` : 't';
  const prevSel = seekS ? `(prev_selected_t+${num(seekS)})` : 'prev_selected_t';
  if (plan.kind === 'bucket') {
    const r = num(plan.rate!);
    const first = afterS === null ? '-1e12' : `floor(${num(afterS)}*${r})`;
    return `gt(floor(${T}*${r}),if(isnan(prev_selected_t),${first},floor(${prevSel}*${r})))`;
  }
  const prev = `if(isnan(prev_selected_t),${afterS === null ? '-1e12' : num(afterS)},${prevSel})`;
  const gap = `gte(${T}-${prev},${num(plan.gapS!)})`;
  if (plan.mode !== 'scene') return gap;
  const cut = `gt(scene,${num(plan.sceneThreshold!)})*${gap}`;
  // A fresh extraction also keeps the first frame (the opening shot).
  return afterS === null ? `max(isnan(prev_selected_t)*eq(n,0),${cut})` : cut;
}

/** Output size: short side `shortSide` (never upscaled), aspect kept, both even. */
export function targetSize(displayWidth: number, displayHeight: number, shortSide: number): { width: number; height: number } {
  const short = Math.min(displayWidth, displayHeight);
  const scale = Math.min(1, shortSide / short);
  const even = (x: number) => Math.max(2, Math.min(2 * Math.round((x * scale) / 2), 2 * Math.floor(x / 2)));
  return { width: even(displayWidth), height: even(displayHeight) };
}
