import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tar from 'tar-stream';
import { indexShardFile, indexShardSamples, readShardSamples, ShardIntegrityError } from '../src';

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

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'dinoq-tar-index-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The archive's index read from memory, checked equal to the index read from a file of it. */
async function indexBoth(tarBytes: Uint8Array, name: string) {
  const file = path.join(dir, name);
  writeFileSync(file, tarBytes);
  const fromMemory = await indexShardSamples(tarBytes, name);
  expect(await indexShardFile(file, name)).toEqual(fromMemory);
  return fromMemory;
}

describe('indexShardSamples and indexShardFile', () => {
  test('find the members that readShardSamples reads, long names and odd sizes included', async () => {
    const tarBytes = await archive([
      { name: 'a.png', body: bytes(700, 1) },
      { name: 'a.cls', body: new TextEncoder().encode('3') },
      { name: `${longDir}b.jpg`, body: bytes(513, 2) },
      { name: `${longDir}b.mask.png`, body: bytes(5, 3) },
      { name: 'c.txt', body: bytes(10, 4) },
      { name: 'c.webp', body: bytes(0, 0) },
    ]);
    const index = await indexBoth(tarBytes, 'test.tar');
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

  test('a file read through its window: headers, labels and long names across window edges', async () => {
    // Bodies from 0 to ~200 KB, so headers, .cls bodies and pax records fall on every side of the
    // 64 KiB window's edges, and some bodies are larger than the window.
    const members = [];
    for (let i = 0; i < 120; i++) {
      const key = i % 7 === 0 ? `${longDir}s${i}` : `s${i}`;
      members.push({
        name: `${key}.jpg`,
        body: bytes(((i * 7919) % 3000) + (i % 11 === 0 ? 140_000 : 0), i),
      });
      members.push({ name: `${key}.cls`, body: new TextEncoder().encode(String(i % 10)) });
    }
    const tarBytes = await archive(members);
    const index = await indexBoth(tarBytes, 'large.tar');
    expect(index).toHaveLength(120);
    expect(index.map((s) => s.label)).toEqual(members.filter((_, k) => k % 2 === 1).map((_, i) => i % 10));
    for (const [i, s] of index.entries())
      expect(tarBytes.subarray(s.image!.offset, s.image!.offset + s.image!.length)).toEqual(
        members[2 * i].body,
      );
  });

  test('a truncated archive or a bad label is a ShardIntegrityError naming the shard', async () => {
    const tarBytes = await archive([{ name: 'a.png', body: bytes(2000, 1) }]);
    await expect(indexShardSamples(tarBytes.subarray(0, 1024), 'cut.tar')).rejects.toThrow(
      ShardIntegrityError,
    );
    writeFileSync(path.join(dir, 'cut.tar'), tarBytes.subarray(0, 1024));
    await expect(indexShardFile(path.join(dir, 'cut.tar'), 'cut.tar')).rejects.toThrow(/cut\.tar/);
    const badLabel = await archive([{ name: 'a.cls', body: new TextEncoder().encode('x') }]);
    await expect(indexShardSamples(badLabel, 'bad.tar')).rejects.toThrow(
      /sample a: \.cls member "x" is not an integer/,
    );
  });
});
