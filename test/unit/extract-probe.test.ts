/**
 * The probe's pure parts: stream choice, colour facts and their conversion, the HDR
 * peak, the scan's parsing and its interlace verdict.
 */
import { VideoDecodeError } from '../../contracts';
import { bitDepthOf, colourFilters, describeColour, lumaToNits, toneMapPeak } from '../../activities/frames/colour';
import { applyScan, describeProbe, peakFromSideData } from '../../activities/frames/probe';
import { idetFieldOrder, parseScan, scanArgs } from '../../activities/frames/scan';
import { chooseVideoStream, type ProbeStream } from '../../activities/frames/stream-choice';

const video = (index: number, extra: Partial<ProbeStream> = {}): ProbeStream => ({
  index,
  codec_type: 'video',
  codec_name: 'h264',
  width: 1280,
  height: 720,
  avg_frame_rate: '25/1',
  duration: '10',
  nb_frames: '250',
  ...extra,
});

describe('chooseVideoStream', () => {
  it('skips cover art placed first and says why', () => {
    const c = chooseVideoStream(
      'a.mp4',
      [
        video(0, { codec_name: 'mjpeg', width: 300, height: 300, nb_frames: undefined, disposition: { attached_pic: 1 } }),
        video(1),
        { index: 2, codec_type: 'audio' },
      ],
      10,
    );
    expect(c.index).toBe(1);
    expect(c.reason).toBe('stream 1: the only video stream (h264 1280x720, 250 frames, 10.00 s); skipped stream 0: attached picture (cover art)');
    expect(c.streams.map((s) => s.skipped)).toEqual(['attached picture (cover art)', undefined]);
  });

  it('skips timed thumbnails and one-frame pictures; ranks by frames, then duration, then area, then index', () => {
    const thumbs = video(0, { codec_name: 'mjpeg', disposition: { timed_thumbnails: 1 }, nb_frames: '900' });
    const still = video(1, { codec_name: 'png', nb_frames: '1' });
    const preview = video(2, { width: 320, height: 180, nb_frames: '100' });
    const main = video(3, { nb_frames: '250' });
    expect(chooseVideoStream('a', [thumbs, still, preview, main], 10).index).toBe(3);
    // Frames unknown: estimated from duration x rate.
    const longer = video(4, { nb_frames: undefined, duration: '20' });
    expect(chooseVideoStream('a', [main, longer], 20).index).toBe(4);
    // Same frames and duration: the larger picture; then the lower index.
    expect(chooseVideoStream('a', [video(0, { width: 640, height: 360 }), video(1)], 10).index).toBe(1);
    expect(chooseVideoStream('a', [video(0), video(1)], 10).index).toBe(0);
  });

  it('no usable stream: audio only, no video, or every stream skipped', () => {
    const reason = (streams: ProbeStream[]) => {
      try {
        chooseVideoStream('f.mp4', streams, 10);
      } catch (err) {
        expect(err).toBeInstanceOf(VideoDecodeError);
        return (err as VideoDecodeError).reason;
      }
      throw new Error('no error');
    };
    expect(reason([{ index: 0, codec_type: 'audio' }])).toBe('audio only: no video stream');
    expect(reason([])).toBe('no video stream');
    expect(reason([video(0, { disposition: { attached_pic: 1 } })])).toBe('no usable video stream (stream 0: attached picture (cover art))');
    expect(reason([video(0, { width: 0, height: 0 })])).toBe('video stream has no frame size (0x0)');
  });
});

describe('colour facts', () => {
  it('bit depth from the pixel format', () => {
    expect([
      bitDepthOf('yuv420p'),
      bitDepthOf('yuv420p10le'),
      bitDepthOf('yuv444p12be'),
      bitDepthOf('p010le'),
      bitDepthOf('gray10le'),
      bitDepthOf('rgb48le'),
      bitDepthOf('nv12'),
      bitDepthOf(undefined, '10'),
    ]).toEqual([8, 10, 12, 10, 10, 16, 8, 10]);
  });

  it('untagged streams: range from the pixel format, matrix by height, BT.709 transfer and primaries, listed as assumed', () => {
    expect(describeColour({ pix_fmt: 'yuv420p' }, 480)).toMatchObject({
      range: 'limited',
      matrix: 'smpte170m',
      transfer: 'bt709',
      primaries: 'bt709',
      assumed: ['range', 'matrix', 'transfer', 'primaries'],
      conversion: 'swscale',
    });
    expect(describeColour({ pix_fmt: 'yuv420p' }, 1080).matrix).toBe('bt709');
    expect(describeColour({ pix_fmt: 'yuvj422p', color_space: 'bt470bg' }, 120)).toMatchObject({ range: 'full', matrix: 'bt470bg' });
    expect(describeColour({ pix_fmt: 'rgb24' }, 240)).toMatchObject({ range: 'full', matrix: 'rgb' });
    expect(describeColour({ pix_fmt: 'yuv420p10le', color_space: 'bt2020nc', color_range: 'tv' }, 2160)).toMatchObject({
      primaries: 'bt2020',
      conversion: 'zscale',
    });
  });

  it('PQ and HLG are tone-mapped; the filters take the source matrix and range explicitly', () => {
    const pq = describeColour(
      { pix_fmt: 'yuv420p10le', color_space: 'bt2020nc', color_transfer: 'smpte2084', color_primaries: 'bt2020', color_range: 'tv' },
      2160,
    );
    expect(pq).toMatchObject({ dynamicRange: 'pq', conversion: 'zscale+tonemap', hdr: { toneMapPeak: 10 } });
    expect(describeColour({ color_transfer: 'arib-std-b67' }, 1080).dynamicRange).toBe('hlg');
    expect(colourFilters(describeColour({ pix_fmt: 'yuv420p', color_space: 'bt709', color_range: 'tv' }, 1080), 456, 256)).toBe(
      'scale=456:256:flags=bicubic:in_color_matrix=bt709:in_range=tv:out_color_matrix=bt601:out_range=pc,format=yuvj420p',
    );
    expect(colourFilters(describeColour({ pix_fmt: 'rgb24' }, 240), 320, 240)).toBe(
      'scale=320:240:flags=bicubic:out_color_matrix=bt601:out_range=pc,format=yuvj420p',
    );
    expect(
      colourFilters(
        describeColour({ pix_fmt: 'yuv420p10le', color_space: 'bt2020nc', color_primaries: 'bt2020', color_transfer: 'bt2020-10', color_range: 'tv' }, 720),
        456,
        256,
      ),
    ).toBe('zscale=w=456:h=256:f=bicubic:min=2020_ncl:rin=limited:pin=2020:tin=2020_10:p=709:t=709:m=170m:r=full,format=yuvj420p');
  });

  it('HDR luminance: PQ reference points, HLG through a 1000-nit display; the tone-map peak', () => {
    // PQ: code 0.508 (10-bit limited 509) is about 100 nits, full scale 10,000.
    expect(lumaToNits(64 + 0.5081 * 876, 10, 'limited', 'pq')).toBeCloseTo(100, -1);
    expect(lumaToNits(940, 10, 'limited', 'pq')).toBeCloseTo(10000, 0);
    expect(lumaToNits(64, 10, 'limited', 'pq')).toBe(0);
    // HLG: full signal is the display's peak, 1000 nits.
    expect(lumaToNits(940, 10, 'limited', 'hlg')).toBeCloseTo(1000, 0);
    expect(lumaToNits(64 + 0.5 * 876, 10, 'limited', 'hlg')).toBeCloseTo(1000 * (0.25 / 3) ** 1.2, 3);
    expect(toneMapPeak(95, 1000)).toBe(1);
    expect(toneMapPeak(400, 1000)).toBe(4);
    expect(toneMapPeak(4000, 1000)).toBe(10);
    expect(toneMapPeak(undefined, 600)).toBe(6);
    expect(toneMapPeak(undefined, undefined)).toBe(10);
  });

  it('the metadata peak: MaxCLL, else the mastering display maximum', () => {
    expect(
      peakFromSideData([
        { side_data_type: 'Mastering display metadata', max_luminance: '10000000/10000' },
        { side_data_type: 'Content light level metadata', max_content: 800 },
      ]),
    ).toBe(800);
    expect(peakFromSideData([{ side_data_type: 'Mastering display metadata', max_luminance: '10000000/10000' }])).toBe(1000);
    expect(peakFromSideData([{ side_data_type: 'Content light level metadata', max_content: 0 }])).toBeUndefined();
    expect(peakFromSideData(undefined)).toBeUndefined();
  });
});

describe('the scan', () => {
  it('parses the last idet summary and the largest YMAX', () => {
    const stderr = [
      '[Parsed_idet_0 @ 0x1] Multi frame detection: TFF:     0 BFF:     0 Progressive:     0 Undetermined:     0',
      'lavfi.signalstats.YMAX=514',
      'lavfi.signalstats.YMAX=531',
      '[Parsed_idet_0 @ 0x2] Multi frame detection: TFF:    97 BFF:     1 Progressive:     2 Undetermined:    20',
    ].join('\n');
    expect(parseScan(stderr)).toEqual({ idet: { tff: 97, bff: 1, progressive: 2, undetermined: 20 }, lumaMax: 531 });
    expect(parseScan('nothing')).toEqual({});
  });

  it('interlaced when definite fields outnumber progressive frames (at least 8 of them)', () => {
    expect(idetFieldOrder({ tff: 97, bff: 1, progressive: 2, undetermined: 20 })).toBe('tt');
    expect(idetFieldOrder({ tff: 3, bff: 40, progressive: 10, undetermined: 0 })).toBe('bb');
    expect(idetFieldOrder({ tff: 0, bff: 0, progressive: 102, undetermined: 19 })).toBeUndefined();
    expect(idetFieldOrder({ tff: 5, bff: 0, progressive: 0, undetermined: 115 })).toBeUndefined();
  });

  it('maps the chosen stream, seeks when asked, and measures only what is asked', () => {
    expect(scanArgs('/v.avi', 2, 0, { idet: true, peak: false }).join(' ')).toBe(
      '-nostdin -nostats -loglevel info -i file:/v.avi -filter_complex [0:2]idet[out] -map [out] -frames:v 120 -f null -',
    );
    const both = scanArgs('/v.mkv', 0, 12, { idet: true, peak: true }).join(' ');
    expect(both).toContain('-ss 12 -i file:/v.mkv');
    expect(both).toContain("[0:0]idet,select='not(mod(n\\,4))',scale=w=iw/4:h=ih/4:flags=area,signalstats,metadata=print:key=lavfi.signalstats.YMAX[out]");
    expect(both).toContain('-frames:v 30');
  });

  it('applyScan: idet decides only for streams that declare nothing; the HDR peak is measured, capped by metadata', () => {
    const data = {
      streams: [
        video(0, {
          pix_fmt: 'yuv420p10le',
          color_transfer: 'smpte2084',
          color_space: 'bt2020nc',
          color_primaries: 'bt2020',
          color_range: 'tv',
          field_order: 'progressive',
        }),
      ],
      format: { duration: '10' },
    };
    const probe = describeProbe('a.mkv', data);
    const scanned = applyScan(probe, { idet: { tff: 50, bff: 0, progressive: 0, undetermined: 0 }, lumaMax: 64 + 0.5081 * 876 }, 1000);
    expect(scanned.scan).toEqual(probe.scan);
    expect(scanned.colour.hdr!.metadataPeakNits).toBe(1000);
    expect(scanned.colour.hdr!.measuredPeakNits).toBeCloseTo(100, -1);
    expect(scanned.colour.hdr!.toneMapPeak).toBeCloseTo(1, 1);
    const undeclared = describeProbe('b.avi', { streams: [video(0)], format: { duration: '10' } });
    expect(undeclared.scan.source).toBe('assumed');
    expect(applyScan(undeclared, { idet: { tff: 50, bff: 0, progressive: 0, undetermined: 0 } }).scan).toEqual({
      fieldOrder: 'tt',
      interlaced: true,
      source: 'idet',
      idet: { tff: 50, bff: 0, progressive: 0, undetermined: 0 },
    });
  });

  it('start times: the container start recorded; the stream start on the file timeline', () => {
    const p = describeProbe('late.ts', { streams: [video(0, { start_time: '1.5' })], format: { duration: '10', start_time: '1.4' } });
    expect(p.startTimeS).toBe(1.4);
    expect(p.streamStartS).toBeCloseTo(0.1, 9);
    expect(describeProbe('neg.mkv', { streams: [video(0, { start_time: '-0.08' })], format: { duration: '10', start_time: '-0.08' } }).startTimeS).toBe(-0.08);
  });
});
