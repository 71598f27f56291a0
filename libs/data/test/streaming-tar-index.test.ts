import * as tar from 'tar-stream';
import { indexShardSamples, readShardSamples, ShardIntegrityError } from '../src';

/** A tar archive of the given members, written by tar-stream (pax headers for long names). */
async function archive(members: { name: string; body: Uint8Array }[]): Promise<Uint8Array> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const m of members) pack.entry({ name: m.name, size: m.body.length }, Buffer.from(m.body));
  pack.finalize();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const longDir = `${'d'.repeat(120)}/`;

describe('indexShardSamples', () => {
  test('finds the members that readShardSamples reads, long names and odd sizes included', async () => {
    const tarBytes = await archive([
      { name: 'a.png', body: bytes(700, 1) },
      { name: 'a.cls', body: new TextEncoder().encode('3') },
      { name: `${longDir}b.jpg`, body: bytes(513, 2) },
      { name: `${longDir}b.mask.png`, body: bytes(5, 3) },
      { name: 'c.txt', body: bytes(10, 4) },
      { name: 'c.webp', body: bytes(0, 0) },
    ]);
    const index = indexShardSamples(tarBytes, 'test.tar');
    const parsed = [];
    for await (const s of readShardSamples(tarBytes, 'test.tar')) parsed.push(s);
    const slice = (r?: { offset: number; length: number }) =>
      r && Array.from(tarBytes.subarray(r.offset, r.offset + r.length));
    expect(
      index.map((s) => ({ key: s.key, image: slice(s.image), label: s.label, mask: slice(s.mask) })),
    ).toEqual(
      parsed.map((s) => ({
        key: s.key,
        image: s.image && Array.from(s.image),
        label: s.label,
        mask: s.mask && Array.from(s.mask),
      })),
    );
    expect(index.map((s) => s.key)).toEqual(['a', `${longDir}b`, 'c']);
  });

  test('a truncated archive or a bad label is a ShardIntegrityError naming the shard', async () => {
    const tarBytes = await archive([{ name: 'a.png', body: bytes(2000, 1) }]);
    expect(() => indexShardSamples(tarBytes.subarray(0, 1024), 'cut.tar')).toThrow(ShardIntegrityError);
    expect(() => indexShardSamples(tarBytes.subarray(0, 1024), 'cut.tar')).toThrow(/cut\.tar/);
    const badLabel = await archive([{ name: 'a.cls', body: new TextEncoder().encode('x') }]);
    expect(() => indexShardSamples(badLabel, 'bad.tar')).toThrow(
      /sample a: \.cls member "x" is not an integer/,
    );
  });
});
