/**
 * Colour: the source's colour facts as ffprobe tags them (with the usual assumptions for
 * untagged streams), and the filters that turn its frames into 8-bit BT.709 SDR encoded
 * with the JPEG (JFIF) convention: BT.601 YCbCr, full range.
 *
 * Three conversions (`VideoColour.conversion`):
 * - `swscale`: BT.709 / BT.601 primaries, SDR: ffmpeg's `scale` with the source's matrix
 *   and range given explicitly (swscale's default would read every source as BT.601);
 * - `zscale`: wide-gamut SDR (BT.2020, P3): zimg converts primaries in linear light;
 * - `zscale+tonemap`: PQ (SMPTE ST 2084) and HLG (ARIB STD-B67): to linear light with a
 *   100-nit reference white, BT.709 primaries, ffmpeg's `tonemap=mobius` (linear up to a
 *   knee, then a smooth roll-off to the peak; from mpv) with the peak the probe measured,
 *   then the BT.709 transfer.
 *
 * @see https://ffmpeg.org/ffmpeg-filters.html#zscale, #tonemap, #scale
 */
import type { VideoColour } from '../../contracts';
import type { ProbeStream } from './stream-choice';

/** Reference white of the tone mapping (nits): linear 1.0; zimg's default nominal peak. */
export const REFERENCE_WHITE_NITS = 100;

/** A stream's colour fields as ffprobe's JSON gives them. */
export type ColourTags = Pick<ProbeStream, 'pix_fmt' | 'bits_per_raw_sample' | 'color_range' | 'color_space' | 'color_transfer' | 'color_primaries'>;

const RGB_FORMATS = /^(rgb|bgr|gbr|argb|abgr|rgba|bgra|0rgb|rgb0|bgr0|0bgr|x2rgb|x2bgr|pal8|monow|monob)/;
const GRAY_FORMATS = /^(gray|ya)/;

/** Bits per component of a pixel format (`yuv420p10le` -> 10, `rgb48be` -> 16, `p010le` -> 10), else `bits_per_raw_sample`, else 8. */
export function bitDepthOf(pixFmt: string | undefined, bitsPerRawSample?: string | number): number {
  const f = pixFmt ?? '';
  const m = /(?:p|f)(\d{2})(le|be)?$/.exec(f) ?? /^p0(\d{2})(le|be)?$/.exec(f) ?? /^(?:gray|y)(\d{2})(le|be)?$/.exec(f);
  if (m) return Number(m[1]);
  if (/^(rgb|bgr)48|^(rgba|bgra)64/.test(f)) return 16;
  const raw = Number(bitsPerRawSample);
  return Number.isInteger(raw) && raw >= 8 && raw <= 16 ? raw : 8;
}

const known = (v: string | undefined) => (v && v !== 'unknown' && v !== 'unspecified' && v !== 'reserved' ? v : undefined);

/**
 * The colour facts of a stream, with untagged values assumed as players do: range from
 * the pixel format (`yuvj*` and RGB are full), matrix BT.709 from 720 lines up and BT.601
 * below, transfer and primaries BT.709 (BT.2020 primaries when the matrix is BT.2020).
 *
 * @param height coded height in lines.
 * @param hdrPeak the HDR peak facts, when already known (the probe's scan adds them).
 */
export function describeColour(tags: ColourTags, height: number, hdrPeak?: VideoColour['hdr']): VideoColour {
  const pixelFormat = tags.pix_fmt ?? 'unknown';
  const rgb = RGB_FORMATS.test(pixelFormat);
  const gray = GRAY_FORMATS.test(pixelFormat);
  const assumed: VideoColour['assumed'] = [];
  let range: VideoColour['range'];
  if (known(tags.color_range)) range = tags.color_range === 'pc' ? 'full' : 'limited';
  else {
    range = rgb || pixelFormat.startsWith('yuvj') ? 'full' : 'limited';
    if (!rgb && !pixelFormat.startsWith('yuvj')) assumed.push('range');
  }
  if (pixelFormat.startsWith('yuvj')) range = 'full';
  let matrix = known(tags.color_space);
  if (rgb || gray) matrix = 'rgb';
  else if (!matrix) {
    matrix = height >= 720 ? 'bt709' : 'smpte170m';
    assumed.push('matrix');
  }
  let transfer = known(tags.color_transfer);
  if (!transfer) {
    transfer = 'bt709';
    assumed.push('transfer');
  }
  let primaries = known(tags.color_primaries);
  if (!primaries) {
    primaries = matrix.startsWith('bt2020') ? 'bt2020' : 'bt709';
    assumed.push('primaries');
  }
  const dynamicRange = transfer === 'smpte2084' ? 'pq' : transfer === 'arib-std-b67' ? 'hlg' : 'sdr';
  const wide = !['bt709', 'bt470bg', 'smpte170m', 'bt470m', 'smpte240m', 'film'].includes(primaries);
  const conversion = dynamicRange !== 'sdr' ? 'zscale+tonemap' : wide ? 'zscale' : 'swscale';
  return {
    pixelFormat,
    bitDepth: bitDepthOf(tags.pix_fmt, tags.bits_per_raw_sample),
    range,
    matrix,
    transfer,
    primaries,
    assumed,
    dynamicRange,
    conversion,
    ...(dynamicRange !== 'sdr' ? { hdr: hdrPeak ?? { toneMapPeak: toneMapPeak(undefined, undefined) } } : {}),
  };
}

/**
 * The tone mapper's peak, in units of the reference white: the measured peak capped by
 * the metadata's, else the metadata's, else 10 (1000 nits, the usual HDR10 grade and the
 * HLG nominal display); never below 1 (in-range content is left as it is).
 */
export function toneMapPeak(measuredNits: number | undefined, metadataNits: number | undefined): number {
  const nits = measuredNits !== undefined ? Math.min(measuredNits, metadataNits ?? Infinity) : (metadataNits ?? 1000);
  return Math.round(Math.max(1, nits / REFERENCE_WHITE_NITS) * 1000) / 1000;
}

/**
 * Luminance in nits of a luma code value of an HDR signal: the PQ EOTF (SMPTE ST 2084), or
 * for HLG the inverse OETF then the OOTF of a 1000-nit display (system gamma 1.2;
 * ITU-R BT.2100). Luma stands in for the brightest channel (an approximation that reads
 * saturated colours a little low).
 *
 * @param code luma code value at `bitDepth` bits; `range` limited (64..940 at 10 bits) or full.
 */
export function lumaToNits(code: number, bitDepth: number, range: VideoColour['range'], transfer: 'pq' | 'hlg'): number {
  const scale = 2 ** (bitDepth - 8);
  const e = Math.min(1, Math.max(0, range === 'full' ? code / (2 ** bitDepth - 1) : (code - 16 * scale) / (219 * scale)));
  if (transfer === 'pq') {
    const m1 = 2610 / 16384;
    const m2 = (2523 / 4096) * 128;
    const c1 = 3424 / 4096;
    const c2 = (2413 / 4096) * 32;
    const c3 = (2392 / 4096) * 32;
    const p = e ** (1 / m2);
    return 10000 * (Math.max(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1);
  }
  const a = 0.17883277;
  const b = 1 - 4 * a;
  const c = 0.5 - a * Math.log(4 * a);
  const scene = e <= 0.5 ? (e * e) / 3 : (Math.exp((e - c) / a) + b) / 12;
  return 1000 * scene ** 1.2;
}

// ffprobe names -> zscale (zimg) names.
const Z_MATRIX: Record<string, string> = {
  bt709: '709',
  bt470bg: '470bg',
  smpte170m: '170m',
  bt2020nc: '2020_ncl',
  bt2020c: '2020_cl',
  smpte240m: '240m',
  fcc: 'fcc',
  ycgco: 'ycgco',
  'chroma-derived-nc': 'chroma-derived-nc',
  'chroma-derived-c': 'chroma-derived-c',
  ictcp: 'ictcp',
};
const Z_TRANSFER: Record<string, string> = {
  bt709: '709',
  smpte170m: '601',
  bt470bg: '601',
  bt470m: '601',
  gamma22: '601',
  gamma28: '601',
  'bt2020-10': '2020_10',
  'bt2020-12': '2020_12',
  smpte2084: 'smpte2084',
  'arib-std-b67': 'arib-std-b67',
  'iec61966-2-1': 'iec61966-2-1',
  linear: 'linear',
  smpte240m: '240m',
};
const Z_PRIMARIES: Record<string, string> = {
  bt709: '709',
  smpte170m: '170m',
  bt470bg: '470bg',
  bt470m: '470m',
  smpte240m: '240m',
  bt2020: '2020',
  film: 'film',
  smpte428: 'smpte428',
  smpte431: 'smpte431',
  smpte432: 'smpte432',
  'jedec-p22': 'jedec-p22',
};
// ffprobe names -> swscale's in_color_matrix names.
const SWS_MATRIX: Record<string, string> = {
  bt709: 'bt709',
  bt470bg: 'bt601',
  smpte170m: 'bt601',
  smpte240m: 'smpte240m',
  fcc: 'fcc',
  bt2020nc: 'bt2020',
  bt2020c: 'bt2020',
};

/**
 * The filters that scale a frame to `width` x `height` and convert it to 8-bit BT.709
 * SDR as full-range BT.601 YCbCr 4:2:0 (`yuvj420p`, what a JPEG holds; the luma plane is
 * then the frame's full-range luma). One comma-separated chain for the filter graph.
 */
export function colourFilters(colour: VideoColour, width: number, height: number): string {
  const out = ',format=yuvj420p';
  if (colour.conversion === 'swscale') {
    const input = colour.matrix === 'rgb' ? '' : `:in_color_matrix=${SWS_MATRIX[colour.matrix] ?? 'bt601'}:in_range=${colour.range === 'full' ? 'pc' : 'tv'}`;
    return `scale=${width}:${height}:flags=bicubic${input}:out_color_matrix=bt601:out_range=pc${out}`;
  }
  const zin =
    (colour.matrix === 'rgb' ? '' : `:min=${Z_MATRIX[colour.matrix] ?? '709'}:rin=${colour.range}`) +
    `:pin=${Z_PRIMARIES[colour.primaries] ?? '709'}:tin=${Z_TRANSFER[colour.transfer] ?? '709'}`;
  const resize = `zscale=w=${width}:h=${height}:f=bicubic${zin}`;
  if (colour.conversion === 'zscale') return `${resize}:p=709:t=709:m=170m:r=full${out}`;
  const peak = colour.hdr?.toneMapPeak ?? 10;
  return (
    `${resize}:t=linear:npl=${REFERENCE_WHITE_NITS},format=gbrpf32le,zscale=p=709,` + `tonemap=mobius:desat=0:peak=${peak},zscale=t=709:m=170m:r=full${out}`
  );
}
