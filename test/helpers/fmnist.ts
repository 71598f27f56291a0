import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsBlobStore, importFashionMnist, loadSplit, readManifest, type DecodedSplit } from '@dinoq/data';

/** A small real Fashion-MNIST subset imported from the Debian package into a temp folder. */
export async function fmnistSubset(
  limit: number,
): Promise<{ train: DecodedSplit; test: DecodedSplit; root: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-test-'));
  const store = new FsBlobStore(root);
  await importFashionMnist({ store, name: 'fmnist', limit });
  const manifest = await readManifest(store, 'fmnist');
  return {
    train: await loadSplit(store, manifest, 'train'),
    test: await loadSplit(store, manifest, 'test'),
    root,
  };
}
