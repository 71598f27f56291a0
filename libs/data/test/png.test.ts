import sharp from 'sharp';
import { crc32, deflateSync } from 'node:zlib';
import { decodeImage } from '../src/decode';
import { decodePng, encodePng, PngFormatError } from '../src/png';

/** A PNG whose row y uses filter type y % 5, built independently of the codec under test. */
function pngWithEveryFilter(pixels: Uint8Array, width: number, height: number, channels: 3): Buffer {
  const stride = width * channels;
  const at = (y: number, x: number): number => (y < 0 || x < 0 ? 0 : pixels[y * stride + x]);
  const rows: number[] = [];
  for (let y = 0; y < height; y++) {
    const type = y % 5;
    rows.push(type);
    for (let x = 0; x < stride; x++) {
      const a = at(y, x - channels);
      const b = at(y - 1, x);
      const c = at(y - 1, x - channels);
      const p = a + b - c;
      const predictor = [
        0,
        a,
        b,
        (a + b) >> 1,
        Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
          ? a
          : Math.abs(p - b) <= Math.abs(p - c)
            ? b
            : c,
      ][type];
      rows.push((at(y, x) - predictor) & 0xff);
    }
  }
  const chunk = (type: string, body: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.from(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const noise = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + ((i * i) % 13) * 29) & 0xff);

describe('PNG codec', () => {
  it.each([1, 2, 3, 4])('round-trips %i-channel images', (channels) => {
    const pixels = noise(7 * 5 * channels, channels);
    const img = decodePng(encodePng(pixels, 7, 5, channels));
    expect(img).toMatchObject({ width: 7, height: 5, channels });
    expect(Array.from(img.data)).toEqual(Array.from(pixels));
  });

  it('writes PNGs that sharp reads back identically', async () => {
    const pixels = noise(9 * 6, 3);
    const { data, info } = await sharp(encodePng(pixels, 9, 6, 1))
      .toColourspace('b-w')
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(info).toMatchObject({ width: 9, height: 6, channels: 1 });
    expect(Array.from(data)).toEqual(Array.from(pixels));
  });

  it('undoes all five row filters', async () => {
    const pixels = noise(6 * 10 * 3, 7);
    const png = pngWithEveryFilter(pixels, 6, 10, 3);
    expect(Array.from(decodePng(png).data)).toEqual(Array.from(pixels));
    const bySharp = await sharp(png).raw().toBuffer();
    expect(Array.from(bySharp)).toEqual(Array.from(pixels));
  });

  it("decodes sharp's adaptively filtered PNGs exactly", async () => {
    const w = 24;
    const h = 16;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => {
      const p = Math.floor(i / 3);
      return ((p % w) * 7 + Math.floor(p / w) * 5 + (i % 3) * 40 + ((p * 13) % 5)) & 0xff;
    });
    const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
      .png({ adaptiveFiltering: true })
      .toBuffer();
    const img = decodePng(png);
    expect(img).toMatchObject({ width: w, height: h, channels: 3 });
    expect(Array.from(img.data)).toEqual(Array.from(rgb));
  });

  it('rejects corrupt data with a CRC error', () => {
    const png = Buffer.from(encodePng(noise(16, 1), 4, 4, 1));
    png[45] ^= 0xff; // inside the IDAT chunk
    expect(() => decodePng(png)).toThrow(PngFormatError);
    expect(() => decodePng(png)).toThrow(/bad CRC/);
  });

  it('hands PNG variants it does not support to sharp', async () => {
    const pixels = noise(8 * 8 * 3, 5);
    const png16 = await sharp(pixels, { raw: { width: 8, height: 8, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    expect(() => decodePng(png16)).toThrow(expect.objectContaining({ unsupported: true }));
    const img = await decodeImage(png16, 3);
    expect(img).toMatchObject({ width: 8, height: 8, channels: 3 });
    expect(Array.from(img.data)).toEqual(Array.from(pixels));
  });

  it('converts between gray and colour on decode', async () => {
    const gray = Uint8Array.of(0, 100, 200, 255);
    const asRgb = await decodeImage(encodePng(gray, 2, 2, 1), 3);
    expect(Array.from(asRgb.data)).toEqual([0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);
    const rgb = Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30);
    const asGray = await decodeImage(encodePng(rgb, 2, 2, 3), 1);
    expect(Array.from(asGray.data)).toEqual([76, 150, 29, 18]);
  });
});
