/**
 * Shared inner loop of the separable resize and blur passes: for i in [0, len),
 *   acc[i] = Σ_k weights[base + k] · src[offsets[k] + i]
 * summed in doubles in tap order (k = 0, 1, …), starting from +0 as a per-pixel loop does.
 *
 * Sweeping whole rows (taps outer, elements inner) reads `src` sequentially. Eight, then four, taps are folded
 * per sweep: `a + p0 + p1 + p2 + p3` evaluates left to right, so each value goes through the same
 * roundings as adding one tap at a time, and the output is bit-identical to that loop.
 */
export function accumulateTaps(
  src: Float32Array,
  offsets: Int32Array,
  weights: Float64Array,
  base: number,
  n: number,
  acc: Float64Array,
  len: number,
): void {
  acc.fill(0, 0, len);
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    const w0 = weights[base + k];
    const w1 = weights[base + k + 1];
    const w2 = weights[base + k + 2];
    const w3 = weights[base + k + 3];
    const w4 = weights[base + k + 4];
    const w5 = weights[base + k + 5];
    const w6 = weights[base + k + 6];
    const w7 = weights[base + k + 7];
    const o0 = offsets[k];
    const o1 = offsets[k + 1];
    const o2 = offsets[k + 2];
    const o3 = offsets[k + 3];
    const o4 = offsets[k + 4];
    const o5 = offsets[k + 5];
    const o6 = offsets[k + 6];
    const o7 = offsets[k + 7];
    for (let i = 0; i < len; i++)
      acc[i] =
        acc[i] +
        w0 * src[o0 + i] +
        w1 * src[o1 + i] +
        w2 * src[o2 + i] +
        w3 * src[o3 + i] +
        w4 * src[o4 + i] +
        w5 * src[o5 + i] +
        w6 * src[o6 + i] +
        w7 * src[o7 + i];
  }
  for (; k + 4 <= n; k += 4) {
    const w0 = weights[base + k];
    const w1 = weights[base + k + 1];
    const w2 = weights[base + k + 2];
    const w3 = weights[base + k + 3];
    const o0 = offsets[k];
    const o1 = offsets[k + 1];
    const o2 = offsets[k + 2];
    const o3 = offsets[k + 3];
    for (let i = 0; i < len; i++)
      acc[i] = acc[i] + w0 * src[o0 + i] + w1 * src[o1 + i] + w2 * src[o2 + i] + w3 * src[o3 + i];
  }
  for (; k < n; k++) {
    const w = weights[base + k];
    const o = offsets[k];
    for (let i = 0; i < len; i++) acc[i] += w * src[o + i];
  }
}

/** A growable scratch buffer, so hot loops do not allocate (and fault in) fresh memory per call. */
export class Scratch<T extends Float32Array | Float64Array | Int32Array> {
  private buffer: T;

  constructor(private readonly make: (length: number) => T) {
    this.buffer = make(0);
  }

  /** At least `length` elements; contents are left over from earlier calls. */
  get(length: number): T {
    if (this.buffer.length < length) this.buffer = this.make(length);
    return this.buffer;
  }
}
