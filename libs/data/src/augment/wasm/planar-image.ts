import { KERNELS_WASM_BASE64 } from './kernels-bytes';

/** The parts of the WebAssembly API used here (this project's type libraries do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The exports of kernels.wat (pointers are byte offsets into `memory`; see the .wat for each). */
export interface Kernels {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  sumRows(
    src: number,
    offs: number,
    ws: number,
    n4: number,
    dst: number,
    len: number,
    lo: number,
    hi: number,
  ): void;
  resizeRows(
    src: number,
    srcStride: number,
    rows: number,
    outW: number,
    stride: number,
    start: number,
    count: number,
    ws: number,
    taps: number,
    flip: number,
    dst: number,
  ): void;
  boxRowsH(
    img: number,
    height: number,
    width: number,
    stride: number,
    r: number,
    ww: number,
    fw: number,
    line: number,
    offs: number,
  ): void;
  boxRowsV(
    src: number,
    dst: number,
    height: number,
    stride: number,
    r: number,
    ww: number,
    fw: number,
    offs: number,
  ): void;
  scaleShift(p: number, len: number, a: number, c: number): void;
  normalize(
    p: number,
    len: number,
    s0: number,
    s1: number,
    s2: number,
    m0: number,
    m1: number,
    m2: number,
  ): void;
  solarize(p: number, len: number): void;
  meanLuma(img: number, height: number, width: number, stride: number): number;
  pixelOp(img: number, height: number, stride: number, op: number, amount: number): void;
  hue(img: number, height: number, stride: number, shift: number): void;
  interleave(img: number, height: number, width: number, stride: number, out: number): void;
  deinterleave(src: number, height: number, width: number, stride: number, img: number): void;
}

let instance: Kernels | undefined;

/**
 * This thread's kernels, compiled and instantiated synchronously on first use: a module-level
 * instance, so each worker thread of the augmentation pools gets its own, with its own memory.
 */
export function kernels(): Kernels {
  instance ??= new wasm.Instance(new wasm.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64')))
    .exports as Kernels;
  return instance;
}

const PAGE = 65536;
const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** Grows the kernel memory to at least `bytes`. */
function reserve(bytes: number): void {
  const { memory } = kernels();
  const missing = bytes - memory.buffer.byteLength;
  if (missing > 0) memory.grow(Math.ceil(missing / PAGE));
}

/** Float32 view of `length` floats at `ptr`; made afresh after any allocation (growing detaches views). */
export function floatsAt(ptr: number, length: number): Float32Array {
  return new Float32Array(kernels().memory.buffer, ptr, length);
}

export function intsAt(ptr: number, length: number): Int32Array {
  return new Int32Array(kernels().memory.buffer, ptr, length);
}

/**
 * Scratch regions of the given byte sizes, above the current image if there is one, each 16-byte
 * aligned and followed by 32 zeroed bytes (a kernel may read up to a pixel and a vector past its
 * data); valid until the next allocation.
 */
export function scratch(...sizes: number[]): number[] {
  let at = current?.end ?? 0;
  const ptrs = sizes.map((bytes) => {
    const ptr = at;
    at += align16(bytes) + 32;
    return ptr;
  });
  reserve(at);
  const bytes = new Uint8Array(kernels().memory.buffer);
  for (const [i, ptr] of ptrs.entries()) bytes.fill(0, ptr + sizes[i], ptr + align16(sizes[i]) + 32);
  return ptrs;
}

// Every image is laid out from byte 0, so making one ends the previous one (one at a time per
// thread, as augmentation runs); `current` tells a stale handle apart.
let current: PlanarImage | undefined;

/**
 * A 3-channel float image in the kernel memory, in planar rows: row y holds its R, G and B values
 * as three segments of `stride` floats (the width rounded up to a multiple of 4; the lanes past
 * the width are padding). A spare buffer of the same size follows it for passes that cannot work
 * in place; scratch for a single kernel call goes above both.
 */
export class PlanarImage {
  readonly stride: number;
  /** Floats in the pixel buffer (and in the spare). */
  readonly length: number;
  private pixels = 0;
  private spareAt: number;
  /** First byte past the pixels and the spare. */
  readonly end: number;

  private constructor(
    readonly height: number,
    readonly width: number,
  ) {
    if (!(height > 0 && width > 0)) throw new Error(`image size ${height} × ${width} must be positive`);
    this.stride = Math.ceil(width / 4) * 4;
    this.length = 3 * height * this.stride;
    this.spareAt = align16(this.length * 4);
    this.end = 2 * this.spareAt;
    reserve(this.end);
  }

  /** A new image (contents undefined), which ends the previous one. */
  static allocate(height: number, width: number): PlanarImage {
    current = new PlanarImage(height, width);
    return current;
  }

  /** A copy of interleaved RGB pixels (HWC). */
  static fromInterleaved(rgb: Float32Array, height: number, width: number): PlanarImage {
    if (rgb.length !== height * width * 3)
      throw new Error(`fromInterleaved: ${rgb.length} floats for a ${height} × ${width} RGB image`);
    const img = PlanarImage.allocate(height, width);
    const [src] = img.scratch(rgb.length * 4);
    floatsAt(src, rgb.length).set(rgb);
    kernels().deinterleave(src, height, width, img.stride, img.ptr);
    return img;
  }

  /** Byte offset of the pixels. */
  get ptr(): number {
    this.check();
    return this.pixels;
  }

  /** Byte offset of the spare buffer. */
  get spare(): number {
    this.check();
    return this.spareAt;
  }

  /** Makes the spare buffer the pixels, after a pass wrote its result there. */
  swap(): void {
    this.check();
    [this.pixels, this.spareAt] = [this.spareAt, this.pixels];
  }

  /** `scratch` above this image, which must still be the current one. */
  scratch(...sizes: number[]): number[] {
    this.check();
    return scratch(...sizes);
  }

  /** The pixels as interleaved RGB (HWC). */
  toInterleaved(out: Float32Array = new Float32Array(this.height * this.width * 3)): Float32Array {
    const floats = this.height * this.width * 3;
    if (out.length !== floats)
      throw new Error(`toInterleaved: ${out.length} floats for a ${this.height} × ${this.width} RGB image`);
    // The kernel may write up to 4 pixels past the last row.
    const [dst] = this.scratch((floats + 12) * 4);
    kernels().interleave(this.ptr, this.height, this.width, this.stride, dst);
    out.set(floatsAt(dst, floats));
    return out;
  }

  private check(): void {
    if (current !== this)
      throw new Error('PlanarImage used after a newer image replaced it in kernel memory');
  }
}
