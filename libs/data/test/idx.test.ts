import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { IdxFormatError, parseIdx, readIdxFile, readIdxImagesAndLabels } from '../src/importers/idx';
import { idxBytes, useTempDir } from './helpers';

describe('IDX parsing', () => {
  const dir = useTempDir('idx');

  it('reads a hand-built gzip image file and its labels', async () => {
    const pixels = Uint8Array.from({ length: 3 * 2 * 4 }, (_, i) => i * 10);
    await writeFile(path.join(dir(), 'img.gz'), idxBytes([3, 2, 4], pixels, { gzip: true }));
    await writeFile(path.join(dir(), 'lbl'), idxBytes([3], Uint8Array.of(2, 0, 1)));
    const r = await readIdxImagesAndLabels(path.join(dir(), 'img.gz'), path.join(dir(), 'lbl'), 3);
    expect(r).toMatchObject({ count: 3, height: 2, width: 4 });
    expect(Array.from(r.images)).toEqual(Array.from(pixels));
    expect(Array.from(r.labels)).toEqual([2, 0, 1]);
  });

  it('rejects a bad magic number, naming the file', async () => {
    const file = path.join(dir(), 'bad-magic.gz');
    const bytes = Buffer.from(idxBytes([2], Uint8Array.of(1, 2)));
    bytes[2] = 0x0d; // float type instead of unsigned byte
    await writeFile(file, bytes);
    await expect(readIdxFile(file, 1)).rejects.toThrow(IdxFormatError);
    await expect(readIdxFile(file, 1)).rejects.toThrow(`${file}: bad magic number 0x00000d01`);
  });

  it('rejects a file whose dimension count is not the expected one', () => {
    expect(() => parseIdx(idxBytes([2, 1], Uint8Array.of(1, 2)), 'labels.idx', 1)).toThrow(
      'labels.idx: bad magic number 0x00000802, expected 0x00000801',
    );
  });

  it('rejects data that does not match the header sizes', () => {
    expect(() => parseIdx(idxBytes([2, 2, 2], new Uint8Array(7)), 'short.idx', 3)).toThrow(
      'short.idx: dimensions 2x2x2 need 8 data bytes, found 7',
    );
  });

  it('rejects label files that disagree with the images', async () => {
    await writeFile(path.join(dir(), 'i'), idxBytes([2, 1, 1], Uint8Array.of(0, 0)));
    await writeFile(path.join(dir(), 'l3'), idxBytes([3], Uint8Array.of(0, 0, 0)));
    await writeFile(path.join(dir(), 'l-big'), idxBytes([2], Uint8Array.of(0, 10)));
    await expect(readIdxImagesAndLabels(path.join(dir(), 'i'), path.join(dir(), 'l3'), 10)).rejects.toThrow(
      /l3: 3 labels but .*i has 2 images/,
    );
    await expect(
      readIdxImagesAndLabels(path.join(dir(), 'i'), path.join(dir(), 'l-big'), 10),
    ).rejects.toThrow('label 10 at index 1 is not below 10');
  });

  it('reports a corrupt gzip stream with the file name', async () => {
    const file = path.join(dir(), 'corrupt.gz');
    const gz = Buffer.from(idxBytes([4], Uint8Array.of(1, 2, 3, 4), { gzip: true }));
    await writeFile(file, gz.subarray(0, gz.length - 6));
    await expect(readIdxFile(file)).rejects.toThrow(`${file}: corrupt gzip data`);
  });
});
