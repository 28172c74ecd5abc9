/** planExtractBatches: size-aware batching of the extraction (contracts/extraction.ts). */
import { ExtractBatching, ExtractOptions, expectedFrames, planExtractBatches, type BatchableVideo } from '../../contracts';

const options = ExtractOptions.parse({}); // fps 1, at least 4, at most 60 frames a video
const clip = (i: number, durationS: number | null = 1, bytes: number | null = 50_000): BatchableVideo => ({ videoId: `v${i}`, durationS, bytes });

test('expected frames follow the sampling mode, capped by maxFramesPerVideo', () => {
  expect(expectedFrames(1, options)).toBe(4); // the minimum for short clips
  expect(expectedFrames(30, options)).toBe(30);
  expect(expectedFrames(7200, options)).toBe(60);
  expect(expectedFrames(10, ExtractOptions.parse({ mode: 'count', count: 8 }))).toBe(8);
  expect(expectedFrames(10, ExtractOptions.parse({ mode: 'scene' }))).toBe(60);
  expect(expectedFrames(null, options)).toBe(60);
});

test('short clips go many to a batch, cut at maxVideos; order and every video kept', () => {
  const videos = Array.from({ length: 250 }, (_, i) => clip(i));
  const batches = planExtractBatches(videos, options, ExtractBatching.parse({}));
  expect(batches.map((b) => b.length)).toEqual([25, 25, 25, 25, 25, 25, 25, 25, 25, 25]);
  expect(batches.flat()).toEqual(videos.map((v) => v.videoId));
});

test('a batch closes before passing the seconds, bytes or frames limit', () => {
  const b = ExtractBatching.parse({ maxSeconds: 100, maxBytes: 1000, maxFrames: 50, maxVideos: 500 });
  const one = ExtractOptions.parse({ mode: 'count', count: 1 }); // 1 frame a video: frames never the limit
  // 30 s each: three fit in 100 s.
  expect(
    planExtractBatches(
      [0, 1, 2, 3, 4].map((i) => clip(i, 30, 10)),
      one,
      b,
    ).map((x) => x.length),
  ).toEqual([3, 2]);
  // 400 bytes each: two fit in 1000.
  expect(
    planExtractBatches(
      [0, 1, 2, 3].map((i) => clip(i, 1, 400)),
      one,
      b,
    ).map((x) => x.length),
  ).toEqual([2, 2]);
  // 20 frames each (20 s at 1 fps): two fit in 50.
  expect(
    planExtractBatches(
      [0, 1, 2].map((i) => clip(i, 20, 10)),
      options,
      b,
    ).map((x) => x.length),
  ).toEqual([2, 1]);
});

test('a long video, a large file or an unknown one gets an activity of its own, between the batches around it', () => {
  const videos = [clip(0), clip(1), clip(2, 7200, 2e9), clip(3), clip(4, 1, 600 * 1024 * 1024), clip(5, null), clip(6), clip(7)];
  expect(planExtractBatches(videos, options, ExtractBatching.parse({}))).toEqual([['v0', 'v1'], ['v2'], ['v3'], ['v4'], ['v5'], ['v6', 'v7']]);
});

test('batching off: one video each', () => {
  const videos = [clip(0), clip(1), clip(2)];
  expect(planExtractBatches(videos, options, ExtractBatching.parse({ mode: 'off' }))).toEqual([['v0'], ['v1'], ['v2']]);
});

test('lanes: a short list is cut so that every lane has a batch', () => {
  const videos = Array.from({ length: 10 }, (_, i) => clip(i));
  expect(planExtractBatches(videos, options, ExtractBatching.parse({}), 4).map((b) => b.length)).toEqual([3, 3, 3, 1]);
  expect(planExtractBatches(videos, options, ExtractBatching.parse({}), 1).map((b) => b.length)).toEqual([10]);
});
