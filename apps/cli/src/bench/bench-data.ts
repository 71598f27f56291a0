import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { presetNames, type PresetName } from '@dinoq/config';
import { FsBlobStore, importFashionMnist, loadSplit, readManifest, type DecodedSplit } from '@dinoq/data';
import { dataDir } from '../local-layout';

/**
 * Real Fashion-MNIST images for benchmarks: the imported dataset when there is one, else a
 * subset imported on the fly from the Debian package into a temporary folder.
 */
export async function benchSplit(split: 'train' | 'test', limit?: number): Promise<DecodedSplit> {
  let root = dataDir();
  let store = new FsBlobStore(root);
  if (!fs.existsSync(path.join(root, 'datasets', 'fmnist', 'manifest.json'))) {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-bench-'));
    store = new FsBlobStore(root);
    await importFashionMnist({ store, name: 'fmnist', limit: limit ?? 2048 });
  }
  return loadSplit(store, await readManifest(store, 'fmnist'), split, { limit });
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function argValue(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** `--<name> <preset>`: a known preset's name, else an error listing them. */
export function presetArg(name: string, fallback: PresetName): PresetName {
  const preset = argValue(name, fallback)!;
  if (!(presetNames as string[]).includes(preset))
    throw new Error(`--${name}: unknown preset "${preset}" (known: ${presetNames.join(', ')})`);
  return preset as PresetName;
}
