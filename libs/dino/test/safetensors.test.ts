import { decodeSafetensors, encodeSafetensors, type HostTensor } from '../src/safetensors';

function bitsOf(t: HostTensor): number[] {
  return Array.from(new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length));
}

function floats(...bitPatterns: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bitPatterns).buffer);
}

/** Builds a file from a header object and raw data bytes, as another writer might. */
function rawFile(header: object, data: Uint8Array, pad = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function sampleTensors(): Map<string, HostTensor> {
  return new Map<string, HostTensor>([
    // NaN with payloads (quiet and signalling), -0, ±Inf, the smallest denormal, 1.
    [
      'odd.floats',
      {
        dtype: 'float32',
        shape: [2, 3],
        data: floats(0x7fc01234, 0x7f800001, 0x80000000, 0xff800000, 1, 0x3f800000),
      },
    ],
    ['ints', { dtype: 'int32', shape: [3], data: new Int32Array([-2147483648, 0, 2147483647]) }],
    ['empty', { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) }],
    ['scalar', { dtype: 'float32', shape: [], data: new Float32Array([0.1]) }],
  ]);
}

// Written by the reference implementation (Python safetensors 0.8.0, numpy):
// save({"z": float32 [1, 2], "a": int32 [3]}, metadata={"k": "v"}).
const REFERENCE_SMALL =
  'iAAAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJrIjoidiJ9LCJ6Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMCw4XX0sImEiOnsiZHR5cGUiOiJJMzIiLCJzaGFwZSI6WzFdLCJkYXRhX29mZnNldHMiOls4LDEyXX19ICAgAACAPwAAAEADAAAA';
// save({weight: f32 [[1.5, -0], [inf, -2.25]], ids: i32 [7, -3, 2^31-1], half: f16 [1, -2.5, 65504, 2^-24],
//       big: i64 [-1, 2^31-1], double: f64 [0.1, -1e300], "a.b": f32 zeros (0, 3)},
//      metadata={"format": "np", "note": "fixture"})
const REFERENCE_MIXED =
  'mAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJucCIsIm5vdGUiOiJmaXh0dXJlIn0sImJpZyI6eyJkdHlwZSI6Ikk2NCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzAsMTZdfSwiZG91YmxlIjp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMTYsMzJdfSwiYS5iIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlswLDNdLCJkYXRhX29mZnNldHMiOlszMiwzMl19LCJ3ZWlnaHQiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6WzIsMl0sImRhdGFfb2Zmc2V0cyI6WzMyLDQ4XX0sImlkcyI6eyJkdHlwZSI6IkkzMiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzQ4LDYwXX0sImhhbGYiOnsiZHR5cGUiOiJGMTYiLCJzaGFwZSI6WzRdLCJkYXRhX29mZnNldHMiOls2MCw2OF19fSAgICAgICD//////////////38AAAAAmpmZmZmZuT+cdQCIPOQ3/gAAwD8AAACAAACAfwAAEMAHAAAA/f///////38APADB/3sBAA==';

function fromBase64(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

describe('safetensors', () => {
  it('round-trips bit for bit, with metadata and an 8-byte aligned data section', () => {
    const tensors = sampleTensors();
    const bytes = encodeSafetensors(tensors, { format: 'pt', run: 'r1' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.metadata).toEqual({ format: 'pt', run: 'r1' });
    expect([...decoded.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const d = decoded.tensors.get(name)!;
      expect(d.dtype).toBe(t.dtype);
      expect(d.shape).toEqual(t.shape);
      expect(bitsOf(d)).toEqual(bitsOf(t));
    }
    // Insertion order does not change the bytes.
    const reversed = new Map([...tensors].reverse());
    expect(
      Buffer.from(encodeSafetensors(reversed, { format: 'pt', run: 'r1' })).equals(Buffer.from(bytes)),
    ).toBe(true);
    expect(decodeSafetensors(encodeSafetensors(new Map())).tensors.size).toBe(0);
  });

  it('reads from an unaligned view inside a larger buffer', () => {
    const bytes = encodeSafetensors(sampleTensors());
    const host = new Uint8Array(bytes.length + 3);
    host.set(bytes, 3);
    const decoded = decodeSafetensors(host.subarray(3));
    expect(bitsOf(decoded.tensors.get('odd.floats')!)).toEqual(bitsOf(sampleTensors().get('odd.floats')!));
  });

  it('gives every tensor its own exact buffer when reading a Node Buffer inside a larger pool', () => {
    const bytes = encodeSafetensors(sampleTensors());
    // What fs.readFileSync and Buffer.from return for small inputs: a view into a shared pool.
    const pool = new ArrayBuffer(bytes.length + 64);
    new Uint8Array(pool).fill(0xee);
    const file = Buffer.from(pool, 16, bytes.length);
    file.set(bytes);
    for (const input of [file, Buffer.from(bytes)]) {
      const decoded = decodeSafetensors(input);
      for (const [name, want] of sampleTensors()) {
        const got = decoded.tensors.get(name)!;
        expect(got.data.length).toBe(want.data.length);
        expect(got.data.byteOffset).toBe(0);
        expect(got.data.buffer.byteLength).toBe(want.data.byteLength);
        expect(bitsOf(got)).toEqual(bitsOf(want));
      }
    }
  });

  it('writes the same bytes as the reference writer and reads its files', () => {
    const ours = encodeSafetensors(
      new Map<string, HostTensor>([
        ['z', { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) }],
        ['a', { dtype: 'int32', shape: [1], data: new Int32Array([3]) }],
      ]),
      { k: 'v' },
    );
    expect(Buffer.from(ours).toString('base64')).toBe(REFERENCE_SMALL);

    const { tensors, metadata } = decodeSafetensors(fromBase64(REFERENCE_MIXED));
    expect(metadata).toEqual({ format: 'np', note: 'fixture' });
    const get = (name: string) => tensors.get(name)!;
    expect(get('weight')).toMatchObject({ dtype: 'float32', shape: [2, 2] });
    expect(Array.from(get('weight').data)).toEqual([1.5, -0, Infinity, -2.25]);
    expect(Object.is(get('weight').data[1], -0)).toBe(true);
    expect(get('ids')).toMatchObject({ dtype: 'int32', data: new Int32Array([7, -3, 2147483647]) });
    expect(get('half')).toMatchObject({
      dtype: 'float32',
      data: new Float32Array([1, -2.5, 65504, 2 ** -24]),
    });
    expect(get('big')).toMatchObject({ dtype: 'int32', data: new Int32Array([-1, 2147483647]) });
    expect(get('double')).toMatchObject({
      dtype: 'float32',
      data: new Float32Array([Math.fround(0.1), -Infinity]),
    });
    expect(get('a.b')).toMatchObject({ dtype: 'float32', shape: [0, 3] });
  });

  it('converts bfloat16 exactly and refuses int64 values outside int32', () => {
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc020, 0x7fc1, 0x8000]).buffer);
    const decoded = decodeSafetensors(
      rawFile({ b: { dtype: 'BF16', shape: [4], data_offsets: [0, 8] } }, bf16),
    );
    expect(bitsOf(decoded.tensors.get('b')!)).toEqual([0x3f800000, 0xc0200000, 0x7fc10000, 0x80000000]);

    const tooBig = new Uint8Array(new BigInt64Array([2n ** 40n]).buffer);
    expect(() =>
      decodeSafetensors(rawFile({ n: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, tooBig)),
    ).toThrow(/tensor "n" \(I64\) holds 1099511627776 at index 0, outside the int32 range/);
  });

  it('accepts a header whose order differs from the data order', () => {
    const data = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
    const file = rawFile(
      {
        second: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        first: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      },
      data,
      3,
    );
    const { tensors } = decodeSafetensors(file);
    expect(Array.from(tensors.get('first')!.data)).toEqual([1]);
    expect(Array.from(tensors.get('second')!.data)).toEqual([2, 3]);
  });

  describe('rejects broken files with a clear error', () => {
    const good = encodeSafetensors(sampleTensors());
    const f32 = (offsets: [number, number], shape = [1]) => ({ dtype: 'F32', shape, data_offsets: offsets });
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['shorter than the length prefix', good.subarray(0, 5), /truncated file: 5 bytes/],
      ['cut inside the header', good.subarray(0, 40), /truncated file: header declares/],
      ['cut inside the data', good.subarray(0, good.length - 4), /run past the \d+ data bytes/],
      ['header that is not JSON', rawFile({}, new Uint8Array(0)).fill(0x41, 8), /not valid UTF-8 JSON/],
      ['header that is an array', rawFileText('[1]'), /must be a JSON object/],
      [
        'absurd header length',
        (() => {
          const f = good.slice();
          new DataView(f.buffer).setBigUint64(0, 2n ** 40n, true);
          return f;
        })(),
        /exceeds the 100000000-byte limit/,
      ],
      [
        'offsets past the end',
        rawFile({ a: f32([0, 8], [2]) }, new Uint8Array(4)),
        /data_offsets \[0, 8\] run past the 4 data bytes/,
      ],
      ['end before begin', rawFile({ a: f32([4, 0]) }, new Uint8Array(4)), /end < begin/],
      [
        'overlapping tensors',
        rawFile({ a: f32([0, 8], [2]), b: f32([4, 8]) }, new Uint8Array(8)),
        /tensors "a" and "b" overlap at byte 4/,
      ],
      [
        'a hole between tensors',
        rawFile({ a: f32([0, 4]), b: f32([8, 12]) }, new Uint8Array(12)),
        /unused bytes 4..8 before tensor "b"/,
      ],
      ['trailing bytes', rawFile({ a: f32([0, 4]) }, new Uint8Array(8)), /4 trailing data bytes/],
      [
        'size not matching the shape',
        rawFile({ a: f32([0, 8], [3]) }, new Uint8Array(8)),
        /needs 12 bytes but data_offsets span 8/,
      ],
      [
        'an unsupported dtype',
        rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)),
        /tensor "a" has dtype U8; supported/,
      ],
      [
        'a bad shape',
        rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
        /tensor "a" has an invalid shape/,
      ],
      [
        'non-string metadata',
        rawFile({ __metadata__: { n: 1 } }, new Uint8Array(0)),
        /__metadata__ "n" must be a string/,
      ],
    ];
    it.each(cases)('%s', (_name, bytes, message) => {
      expect(() => decodeSafetensors(bytes)).toThrow(message);
    });
  });

  it('validates what it writes', () => {
    const bad = (t: HostTensor) => () => encodeSafetensors(new Map([['t', t]]));
    expect(bad({ dtype: 'float32', shape: [2, 2], data: new Float32Array(3) })).toThrow(
      /tensor "t" has shape \[2,2\] \(4 elements\) but 3 values/,
    );
    expect(bad({ dtype: 'float32', shape: [2], data: new Int32Array(2) as unknown as Float32Array })).toThrow(
      /tensor "t" is float32 but its data is a Int32Array/,
    );
    expect(() => encodeSafetensors(new Map(), { n: 1 as unknown as string })).toThrow(
      /metadata "n" must be a string/,
    );
  });
});

function rawFileText(text: string): Uint8Array {
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}
