import { FixedSizeSplitter, JpegSplitter, WebpSplitter } from '../../activities/frames/streams';

/** A minimal JPEG-shaped byte string: SOI, a DQT holding FF D9, SOS, entropy data with stuffing and a restart marker, EOI. */
function jpeg(tag: number): Buffer {
  const dqt = [0xff, 0xdb, 0x00, 0x06, 0x00, 0xff, 0xd9, tag]; // length 6 covers 00 FF D9 tag
  const sos = [0xff, 0xda, 0x00, 0x03, 0x01];
  const data = [0x12, 0xff, 0x00, 0x34, 0xff, 0xd3, 0x56, tag];
  return Buffer.from([0xff, 0xd8, ...dqt, ...sos, ...data, 0xff, 0xd9]);
}

function feed(split: { push(b: Buffer): Buffer[] }, stream: Buffer, chunk: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += chunk) out.push(...split.push(stream.subarray(i, i + chunk)));
  return out;
}

describe('JpegSplitter', () => {
  const frames = [jpeg(1), jpeg(2), jpeg(3)];
  const stream = Buffer.concat(frames);

  it.each([1, 2, 3, 7, 1000])('cuts concatenated JPEGs whatever the chunk size (%i bytes)', (chunk) => {
    const split = new JpegSplitter();
    expect(feed(split, stream, chunk)).toEqual(frames);
    expect(split.pending).toBe(0);
  });

  it('keeps a partial frame until it ends', () => {
    const split = new JpegSplitter();
    expect(split.push(frames[0]!.subarray(0, 10))).toEqual([]);
    expect(split.pending).toBe(10);
    expect(split.push(frames[0]!.subarray(10))).toEqual([frames[0]]);
  });

  it('rejects a stream that is not JPEG', () => {
    expect(() => new JpegSplitter().push(Buffer.from('RIFF....'))).toThrow(/expected SOI/);
  });
});

describe('WebpSplitter', () => {
  const webp = (payload: string) => {
    const body = Buffer.concat([Buffer.from('WEBP'), Buffer.from(payload)]);
    const head = Buffer.alloc(8);
    head.write('RIFF', 0, 'latin1');
    head.writeUInt32LE(body.length, 4);
    return Buffer.concat([head, body, body.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
  };
  it('cuts RIFF files, odd sizes padded', () => {
    const frames = [webp('abc'), webp('abcd'), webp('x')];
    expect(feed(new WebpSplitter(), Buffer.concat(frames), 5)).toEqual(frames);
  });
});

describe('FixedSizeSplitter', () => {
  it('cuts planes of a fixed size', () => {
    const split = new FixedSizeSplitter(4);
    expect(split.push(Buffer.from([1, 2, 3]))).toEqual([]);
    expect(split.push(Buffer.from([4, 5, 6, 7, 8, 9]))).toEqual([Buffer.from([1, 2, 3, 4]), Buffer.from([5, 6, 7, 8])]);
    expect(split.pending).toBe(1);
  });
  it('rejects a zero size', () => expect(() => new FixedSizeSplitter(0)).toThrow(RangeError));
});
