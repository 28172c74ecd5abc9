/**
 * CutMix augmentation (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong
 * Classifiers with Localizable Features", ICCV): a rectangle of image B is pasted into
 * image A and the target becomes `lambda * y_A + (1 - lambda) * y_B`, lambda being the
 * fraction of A that remains.
 */
import { InvalidInputError } from '../../contracts';
import type { Rng } from '../../lib/rng';

/** A raw, interleaved, row-major (HWC) 8-bit image, e.g. sharp's `.raw()` output. */
export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  /** Channels per pixel (default 3, RGB). */
  channels?: number;
}

/** Result of {@link cutmix}. */
export interface CutMixResult {
  /** The mixed image, same size and channels as the inputs (a new buffer; inputs are not modified). */
  data: Buffer;
  /** Fraction of the pixels that come from A: `1 - box area / image area`, in [0, 1]. */
  lambda: number;
  /** The pasted rectangle in pixels (top-left corner, size; may be empty). */
  box: { x: number; y: number; width: number; height: number };
}

/**
 * CutMix two images of the same size.
 *
 * Following the paper (section 3.1, with alpha = 1): draw `lambda0 ~ Beta(1, 1) = Uniform(0, 1)`,
 * a box of size `W sqrt(1 - lambda0)` by `H sqrt(1 - lambda0)` centred at a uniform pixel
 * position, clip it to the image (rounded to whole pixels), paste B's pixels inside it into
 * A, and recompute `lambda = 1 - (clipped box area) / (W H)` so that it equals the exact
 * fraction of A's pixels kept.
 *
 * @param a image kept outside the box.
 * @param b image pasted inside the box; same width, height and channels as `a`.
 * @param rng uniform [0, 1) generator (e.g. `mulberry32(seed)`); three draws are used.
 * @throws InvalidInputError when sizes differ or a buffer's length is not width*height*channels.
 */
export function cutmix(a: RawImage, b: RawImage, rng: Rng): CutMixResult {
  const c = a.channels ?? 3;
  const { width: W, height: H } = a;
  if (b.width !== W || b.height !== H || (b.channels ?? 3) !== c) {
    throw new InvalidInputError(`cutmix: image sizes differ (${W}x${H}x${c} vs ${b.width}x${b.height}x${b.channels ?? 3})`);
  }
  if (!Number.isInteger(W) || !Number.isInteger(H) || W <= 0 || H <= 0 || !Number.isInteger(c) || c <= 0) {
    throw new InvalidInputError(`cutmix: bad image size ${W}x${H}x${c}`);
  }
  for (const [name, img] of [
    ['a', a],
    ['b', b],
  ] as const) {
    if (img.data.length !== W * H * c) {
      throw new InvalidInputError(`cutmix: image ${name} has ${img.data.length} bytes, expected ${W * H * c}`);
    }
  }
  const lambda0 = rng();
  const cut = Math.sqrt(1 - lambda0);
  const cx = rng() * W;
  const cy = rng() * H;
  const x1 = clamp(Math.round(cx - (W * cut) / 2), 0, W);
  const x2 = clamp(Math.round(cx + (W * cut) / 2), 0, W);
  const y1 = clamp(Math.round(cy - (H * cut) / 2), 0, H);
  const y2 = clamp(Math.round(cy + (H * cut) / 2), 0, H);
  const data = Buffer.from(a.data);
  const rowBytes = (x2 - x1) * c;
  if (rowBytes > 0) {
    for (let y = y1; y < y2; y++) {
      const off = (y * W + x1) * c;
      b.data.copy(data, off, off, off + rowBytes);
    }
  }
  const lambda = 1 - ((x2 - x1) * (y2 - y1)) / (W * H);
  return { data, lambda, box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 } };
}

/**
 * The CutMix target: `lambda * onehot(labelA) + (1 - lambda) * onehot(labelB)`.
 *
 * @returns `numClasses` floats summing to 1 (suitable for `trainTeacher`'s `extraSamples.targets`).
 * @throws InvalidInputError when a label is outside [0, numClasses) or lambda outside [0, 1].
 */
export function cutmixTarget(labelA: number, labelB: number, lambda: number, numClasses: number): Float32Array {
  for (const l of [labelA, labelB]) {
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) throw new InvalidInputError(`label ${l} not in [0, ${numClasses})`);
  }
  if (!(lambda >= 0 && lambda <= 1)) throw new InvalidInputError(`lambda ${lambda} not in [0, 1]`);
  const t = new Float32Array(numClasses);
  t[labelA] = (t[labelA] as number) + lambda;
  t[labelB] = (t[labelB] as number) + (1 - lambda);
  return t;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
