import { ExtractOptions } from '../../contracts/inputs';
import { VideoDecodeError } from '../../contracts';
import { extractionParamsHash, lumaQuality, planSamplingRate, planSampling, selectExpression, mjpegQscale, targetSize } from '../../activities/frames/extract';
import { describeProbe, parseFrameRate, type ProbeJson } from '../../activities/frames/probe';
import type { ProbeStream } from '../../activities/frames/stream-choice';

const defaults = ExtractOptions.parse({});

describe('planSamplingRate', () => {
  it('uses fps when the frame count lies between min and max', () => {
    expect(planSamplingRate({ durationS: 10, frameRate: 25 }, defaults)).toBe(1);
  });

  it('lowers the rate so the cap spreads frames over a long video', () => {
    const r = planSamplingRate({ durationS: 180, frameRate: 25 }, defaults);
    expect(r).toBeCloseTo(60 / 180, 9);
    expect(180 * r).toBeCloseTo(defaults.maxFramesPerVideo, 6);
    const r2 = planSamplingRate({ durationS: 3600, frameRate: 30 }, { ...defaults, maxFramesPerVideo: 100 });
    expect(3600 * r2).toBeCloseTo(100, 6);
  });

  it('raises the rate for short clips to reach minFramesPerVideo', () => {
    const r = planSamplingRate({ durationS: 0.64, frameRate: 25 }, defaults);
    expect(r).toBeCloseTo(4 / 0.64, 9);
    expect(0.64 * r).toBeCloseTo(defaults.minFramesPerVideo, 6);
  });

  it('never raises the rate above the native frame rate', () => {
    // 2 s at 1 fps: 4 frames would need 2 fps, but the video only has 1 frame per second.
    expect(planSamplingRate({ durationS: 2, frameRate: 1 }, defaults)).toBe(1);
    expect(planSamplingRate({ durationS: 0.1, frameRate: 10 }, { ...defaults, minFramesPerVideo: 50 })).toBe(10);
  });

  it('caps at 30 fps when the native rate is unknown, and stays positive for zero duration', () => {
    expect(planSamplingRate({ durationS: 0.05, frameRate: undefined }, defaults)).toBe(30);
    const r = planSamplingRate({ durationS: 0, frameRate: 25 }, defaults);
    expect(r).toBeGreaterThan(0);
    expect(Number.isFinite(r)).toBe(true);
  });

  it('with minFramesPerVideo 0 keeps fps for short clips', () => {
    expect(planSamplingRate({ durationS: 0.5, frameRate: 25 }, { ...defaults, minFramesPerVideo: 0 })).toBe(1);
  });
});

describe('targetSize', () => {
  it('scales the short side to shortSide, keeping aspect, for landscape and portrait', () => {
    expect(targetSize(1920, 1080, 256)).toEqual({ width: 456, height: 256 });
    expect(targetSize(1080, 1920, 256)).toEqual({ width: 256, height: 456 });
    expect(targetSize(640, 480, 240)).toEqual({ width: 320, height: 240 });
  });

  it('gives even dimensions for an odd input (640x465)', () => {
    const s = targetSize(640, 465, 256);
    expect(s.width % 2).toBe(0);
    expect(s.height % 2).toBe(0);
    expect(s.height).toBe(256);
    expect(Math.abs(s.width / s.height - 640 / 465)).toBeLessThan(0.02);
  });

  it('never upscales: a small video keeps its size', () => {
    expect(targetSize(160, 120, 256)).toEqual({ width: 160, height: 120 });
    expect(targetSize(320, 240, 240)).toEqual({ width: 320, height: 240 });
  });

  it('never upscales an odd dimension either (640x465 with a large shortSide)', () => {
    // Rounding an odd side to even must go down, not up: 465 -> 464, never 466.
    const s = targetSize(640, 465, 1024);
    expect(s.width).toBeLessThanOrEqual(640);
    expect(s.height).toBeLessThanOrEqual(465);
    expect(s.height % 2).toBe(0);
  });

  it('never returns a dimension below 2', () => {
    const s = targetSize(2000, 3, 32);
    expect(s.width).toBeGreaterThanOrEqual(2);
    expect(s.height).toBeGreaterThanOrEqual(2);
  });
});

/** Luma planes (one byte per pixel), as ffmpeg's `gray` output gives them. */
function solid(w: number, h: number, v: number): Buffer {
  return Buffer.alloc(w * h, v);
}

function checkerboard(w: number, h: number, cell = 1): Buffer {
  const b = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b[y * w + x] = (Math.floor(x / cell) + Math.floor(y / cell)) % 2 ? 255 : 0;
  return b;
}

describe('lumaQuality', () => {
  it('a black image has p99 0, brightness 0 and no sharpness', () => {
    const q = lumaQuality(solid(32, 24, 0), 32, 24);
    expect(q.p99).toBe(0);
    expect(q.p01).toBe(0);
    expect(q.brightness).toBe(0);
    expect(q.sharpness).toBe(0);
    expect(q.p99).toBeLessThan(defaults.blackLevel);
  });

  it('a white image has p01 255 (near-white by the default filter)', () => {
    const q = lumaQuality(solid(32, 24, 255), 32, 24);
    expect(q.p01).toBe(255);
    expect(q.brightness).toBeCloseTo(255, 3);
    expect(q.p01).toBeGreaterThan(defaults.whiteLevel);
  });

  it('a checkerboard is far sharper than a flat grey image, with the same mean brightness', () => {
    const w = 64;
    const h = 48;
    const flat = lumaQuality(solid(w, h, 128), w, h);
    const cb = lumaQuality(checkerboard(w, h), w, h);
    expect(flat.sharpness).toBe(0);
    expect(cb.sharpness).toBeGreaterThan(1e5);
    expect(cb.brightness).toBeCloseTo(127.5, 0);
    expect(cb.p01).toBe(0);
    expect(cb.p99).toBe(255);
    // A coarser checkerboard has fewer edges: sharper than flat, less than the fine one.
    const coarse = lumaQuality(checkerboard(w, h, 8), w, h);
    expect(coarse.sharpness).toBeGreaterThan(0);
    expect(coarse.sharpness).toBeLessThan(cb.sharpness);
  });

  it('percentiles come from the histogram: 2% dark pixels move p01, not p99', () => {
    const b = solid(10, 10, 200);
    b[0] = 0;
    b[1] = 0;
    const q = lumaQuality(b, 10, 10);
    expect(q.p01).toBe(0);
    expect(q.p99).toBe(200);
    expect(q.brightness).toBeCloseTo(196, 6);
  });
});

describe('extractionParamsHash', () => {
  it('is 16 hex chars, stable, and changes with any stored-frame parameter', () => {
    const h = extractionParamsHash(defaults);
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(extractionParamsHash({ ...defaults })).toBe(h);
    expect(extractionParamsHash({ ...defaults, fps: 2 })).not.toBe(h);
    expect(extractionParamsHash({ ...defaults, shortSide: 128 })).not.toBe(h);
    expect(extractionParamsHash({ ...defaults, format: 'webp' })).not.toBe(h);
    expect(extractionParamsHash({ ...defaults, blackLevel: 0 })).not.toBe(h);
  });
});

describe('parseFrameRate', () => {
  it.each<[string | number | undefined, number | undefined]>([
    ['0/0', undefined],
    ['1/0', undefined],
    ['25/0', undefined],
    ['-25/1', undefined],
    ['90000/1', undefined],
    ['abc', undefined],
    ['', undefined],
    [undefined, undefined],
    [0, undefined],
    [Infinity, undefined],
    ['25/1', 25],
    ['25', 25],
    [24, 24],
    ['1000/1', 1000],
  ])('%p -> %p', (input, expected) => {
    expect(parseFrameRate(input)).toBe(expected);
  });

  it('parses NTSC 30000/1001', () => {
    expect(parseFrameRate('30000/1001')).toBeCloseTo(29.97, 2);
  });
});

type Stream = ProbeStream;
function probeData(streams: Stream[], format: Record<string, unknown> = { duration: 10 }): ProbeJson {
  return { streams: streams.map((s, index) => ({ index, ...s })), format };
}
const h264 = (extra: Stream = {}): Stream => ({
  codec_type: 'video',
  codec_name: 'h264',
  width: 1920,
  height: 1080,
  avg_frame_rate: '30/1',
  r_frame_rate: '30/1',
  ...extra,
});

function decodeError(fn: () => unknown): VideoDecodeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VideoDecodeError);
    return err as VideoDecodeError;
  }
  throw new Error('expected a VideoDecodeError, nothing was thrown');
}

describe('describeProbe', () => {
  it('normalises a plain landscape video', () => {
    const p = describeProbe('a.mp4', probeData([h264(), { codec_type: 'audio', codec_name: 'aac' }], { duration: 12.5 }));
    expect(p).toEqual({
      durationS: 12.5,
      width: 1920,
      height: 1080,
      displayWidth: 1920,
      displayHeight: 1080,
      sampleAspectRatio: '1:1',
      rotation: 0,
      frameRate: 30,
      codec: 'h264',
      hasAudio: true,
      startTimeS: 0,
      streamStartS: 0,
      stream: {
        index: 0,
        reason: 'stream 0: the only video stream (h264 1920x1080, 375 frames, 12.50 s)',
        streams: [{ index: 0, codec: 'h264', width: 1920, height: 1080, frames: 375, durationS: 12.5 }],
      },
      colour: {
        pixelFormat: 'unknown',
        bitDepth: 8,
        range: 'limited',
        matrix: 'bt709',
        transfer: 'bt709',
        primaries: 'bt709',
        assumed: ['range', 'matrix', 'transfer', 'primaries'],
        dynamicRange: 'sdr',
        conversion: 'swscale',
      },
      scan: { fieldOrder: 'progressive', interlaced: false, source: 'assumed' },
    });
  });

  it('audio only -> VideoDecodeError naming the file and "audio only"', () => {
    const err = decodeError(() => describeProbe('/tmp/song.m4a', probeData([{ codec_type: 'audio', codec_name: 'aac' }])));
    expect(err.message).toContain('audio only');
    expect(err.message).toContain('/tmp/song.m4a');
    expect(err.file).toBe('/tmp/song.m4a');
    expect(err.name).toBe('VideoDecodeError');
  });

  it('no stream at all -> "no video stream"', () => {
    const err = decodeError(() => describeProbe('x.bin', probeData([])));
    expect(err.reason).toBe('no video stream');
  });

  it('an attached picture (cover art) is not a video stream', () => {
    const err = decodeError(() =>
      describeProbe('a.mp3', probeData([{ codec_type: 'audio' }, h264({ codec_name: 'mjpeg', disposition: { attached_pic: 1 } })])),
    );
    expect(err.message).toContain('audio only');
  });

  it('rotation -90 from side_data_list swaps the display dimensions', () => {
    const p = describeProbe('phone.mp4', probeData([h264({ side_data_list: [{ side_data_type: 'Display Matrix', rotation: -90 }] })]));
    expect(p.rotation).toBe(-90);
    expect([p.width, p.height]).toEqual([1920, 1080]);
    expect([p.displayWidth, p.displayHeight]).toEqual([1080, 1920]);
  });

  it('reads the rotation as fluent-ffmpeg really gives it: side data flattened onto the stream', () => {
    // fluent-ffmpeg parses ffprobe's default (ini) output and flattens [SIDE_DATA] blocks:
    // there is no side_data_list, only `rotation` (and `side_data_type`) on the stream itself.
    // Numbers are parsed only when unsigned, so -90 stays the string "-90".
    for (const rotation of [90, '-90'] as const) {
      const p = describeProbe('phone.mp4', probeData([h264({ side_data_type: 'Display Matrix', rotation })]));
      expect(Math.abs(p.rotation)).toBe(90);
      expect([p.displayWidth, p.displayHeight]).toEqual([1080, 1920]);
    }
  });

  it('the legacy rotate tag is read too; 180 does not swap', () => {
    const p = describeProbe('old.mp4', probeData([h264({ tags: { rotate: '90' } })]));
    expect(p.rotation).toBe(90);
    expect([p.displayWidth, p.displayHeight]).toEqual([1080, 1920]);
    const q = describeProbe('old.mp4', probeData([h264({ side_data_list: [{ rotation: 180 }] })]));
    expect([q.displayWidth, q.displayHeight]).toEqual([1920, 1080]);
  });

  it('applies the sample aspect ratio to the display width', () => {
    const p = describeProbe('dv.avi', probeData([h264({ width: 720, height: 576, sample_aspect_ratio: '16:15' })]));
    expect(p.displayWidth).toBe(768);
    expect(p.displayHeight).toBe(576);
    const bad = describeProbe('dv.avi', probeData([h264({ width: 720, height: 576, sample_aspect_ratio: '0:1' })]));
    expect(bad.displayWidth).toBe(720);
  });

  it('falls back to the stream duration, then frames / rate', () => {
    expect(describeProbe('a', probeData([h264({ duration: '4.5' })], { duration: 'N/A' })).durationS).toBe(4.5);
    expect(describeProbe('a', probeData([h264({ nb_frames: '60' })], {})).durationS).toBeCloseTo(2, 9);
  });

  it('no duration at all -> VideoDecodeError', () => {
    const err = decodeError(() => describeProbe('t.mp4', probeData([h264()], {})));
    expect(err.message).toMatch(/no duration/);
  });

  it('a video stream without a frame size -> VideoDecodeError', () => {
    const err = decodeError(() => describeProbe('t.mp4', probeData([h264({ width: 0, height: 0 })])));
    expect(err.message).toMatch(/no frame size/);
  });

  it('frame rate falls back from avg_frame_rate to r_frame_rate to nb_frames / duration', () => {
    expect(describeProbe('a', probeData([h264({ avg_frame_rate: '0/0', r_frame_rate: '25/1' })])).frameRate).toBe(25);
    expect(describeProbe('a', probeData([h264({ avg_frame_rate: '0/0', r_frame_rate: '90000/1', nb_frames: '50' })], { duration: 2 })).frameRate).toBe(25);
    expect(describeProbe('a', probeData([h264({ avg_frame_rate: '0/0', r_frame_rate: '0/0' })])).frameRate).toBeUndefined();
  });
});

describe('planSampling and selectExpression', () => {
  const probe = { durationS: 100, frameRate: 25 };
  it('every mode respects the cap, spreading it over the duration', () => {
    expect(planSampling(probe, { ...defaults, mode: 'fps', fps: 5, maxFramesPerVideo: 50 })).toMatchObject({ kind: 'bucket', rate: 0.5, maxFrames: 50 });
    expect(planSampling(probe, { ...defaults, mode: 'count', count: 200, maxFramesPerVideo: 50 })).toMatchObject({ kind: 'bucket', rate: 0.5, maxFrames: 50 });
    expect(planSampling(probe, { ...defaults, mode: 'scene', minSceneGapS: 0.5, maxFramesPerVideo: 50 })).toMatchObject({
      kind: 'gap',
      gapS: 2,
      maxFrames: 50,
    });
    expect(planSampling(probe, { ...defaults, mode: 'keyframes', maxFramesPerVideo: 1000 })).toMatchObject({ kind: 'gap', gapS: 0.1, keyframesOnly: true });
  });

  it('bucket expressions compare the interval of t with that of the previous pick (or the resume point)', () => {
    const plan = planSampling(probe, { ...defaults, fps: 1, maxFramesPerVideo: 1000 });
    expect(selectExpression(plan)).toBe('gt(floor(t*1),if(isnan(prev_selected_t),-1e12,floor(prev_selected_t*1)))');
    expect(selectExpression(plan, 12.5, 12.5)).toBe('gt(floor((t+12.5)*1),if(isnan(prev_selected_t),floor(12.5*1),floor((prev_selected_t+12.5)*1)))');
  });

  it('scene keeps the first frame only on a fresh start', () => {
    const plan = planSampling(probe, { ...defaults, mode: 'scene', sceneThreshold: 0.4, minSceneGapS: 2 });
    expect(selectExpression(plan)).toContain('eq(n,0)');
    expect(selectExpression(plan)).toContain('gt(scene,0.4)');
    expect(selectExpression(plan, 30, 30)).not.toContain('eq(n,0)');
  });

  it('the parameters hash ignores the options of other modes, and changes with the mode', () => {
    const a = extractionParamsHash({ ...defaults, mode: 'fps', sceneThreshold: 0.1 });
    const b = extractionParamsHash({ ...defaults, mode: 'fps', sceneThreshold: 0.9 });
    expect(a).toBe(b);
    expect(extractionParamsHash({ ...defaults, mode: 'scene' })).not.toBe(a);
    expect(extractionParamsHash({ ...defaults, quality: 84 })).not.toBe(a);
  });

  it('JPEG quality maps onto mjpeg -q:v within 2..31', () => {
    expect(mjpegQscale(85)).toBe(4);
    expect(mjpegQscale(100)).toBe(2);
    expect(mjpegQscale(1)).toBe(21);
  });
});
