import { decodeImage, encodeJpeg } from '../src/decode';

describe('encodeJpeg', () => {
  it('writes a JPEG that decodes back to the same size and nearly the same pixels', async () => {
    const width = 40;
    const height = 30;
    const pixels = new Uint8Array(width * height * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (Math.floor(i / 3) % width) * 6 + (i % 3) * 10;
    const jpeg = await encodeJpeg(pixels, width, height, 3, 95);
    expect([...jpeg.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    const back = await decodeImage(jpeg, 3);
    expect([back.width, back.height, back.channels]).toEqual([width, height, 3]);
    let err = 0;
    for (let i = 0; i < pixels.length; i++) err += Math.abs(back.data[i] - pixels[i]);
    expect(err / pixels.length).toBeLessThan(3);
  });
});
