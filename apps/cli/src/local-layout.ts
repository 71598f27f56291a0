import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Local runs keep the same key layout as object storage (ARCHITECTURE.md) under one folder,
 * so a local run directory can be uploaded to a bucket as is.
 */
export function dataDir(opt?: string): string {
  return path.resolve(opt ?? process.env.DINOQ_DATA_DIR ?? '.data');
}

export function runDir(root: string, runId: string): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(runId)) {
    throw new Error(`run id "${runId}" must be 1-64 lowercase letters, digits, "-" or "_"`);
  }
  return path.join(root, 'runs', runId);
}

export function checkpointDir(run: string, step: number): string {
  return path.join(run, 'checkpoints', String(step).padStart(9, '0'));
}

/** Writes every file, then COMMITTED last: a checkpoint without the marker does not exist. */
export function commitLocalCheckpoint(run: string, step: number, files: Record<string, Uint8Array>): string {
  const dir = checkpointDir(run, step);
  if (fs.existsSync(path.join(dir, 'COMMITTED'))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    const tmp = path.join(dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, path.join(dir, name));
  }
  fs.writeFileSync(path.join(dir, 'COMMITTED'), JSON.stringify({ step, files: Object.keys(files) }) + '\n');
  return dir;
}

export function latestLocalCheckpoint(run: string): { step: number; dir: string } | null {
  const root = path.join(run, 'checkpoints');
  if (!fs.existsSync(root)) return null;
  const steps = fs
    .readdirSync(root)
    .filter((d) => fs.existsSync(path.join(root, d, 'COMMITTED')))
    .map(Number)
    .filter(Number.isFinite)
    .sort((a, b) => b - a);
  return steps.length ? { step: steps[0], dir: checkpointDir(run, steps[0]) } : null;
}

export function readCheckpointFiles(dir: string): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (const name of fs.readdirSync(dir)) {
    if (name === 'COMMITTED' || name.startsWith('.')) continue;
    files[name] = new Uint8Array(fs.readFileSync(path.join(dir, name)));
  }
  return files;
}
