import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread running the module `base` (a path without extension). From a build it
 * runs `base.js`. From TypeScript sources (tests under ts-jest) there is no JS file to run, so the
 * thread starts with a small loader that transpiles each `.ts` file on require (TypeScript's
 * `transpileModule`, no type check) and resolves `@dinoq/<lib>` to `libs/<lib>/src/index.ts`.
 * Node offers no hook for this, hence the hand-written loader.
 */

const TS_LOADER = `
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { workerData } = require('node:worker_threads');
const { entry, libsDir } = workerData.__loader;
const ts = require(require.resolve('typescript', { paths: [libsDir] }));
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  const lib = /^@dinoq\\/([a-z-]+)$/.exec(request);
  if (lib) {
    const file = path.join(libsDir, lib[1], 'src', 'index.ts');
    if (fs.existsSync(file)) return file;
  }
  return resolveFilename.call(this, request, parent, ...rest);
};
Module._extensions['.ts'] = (module, filename) => {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
    },
  });
  module._compile(outputText, filename);
};
require(entry);
`;

/** `libs/` of this checkout, seen from libs/threads/{src,dist}. */
const LIBS_DIR = path.resolve(__dirname, '..', '..');

export function spawnModuleThread(base: string, workerData?: Record<string, unknown>): Worker {
  if (fs.existsSync(`${base}.js`)) return new Worker(`${base}.js`, { workerData });
  const entry = `${base}.ts`;
  if (!fs.existsSync(entry)) throw new Error(`spawnModuleThread: neither ${base}.js nor ${entry} exists`);
  return new Worker(TS_LOADER, {
    eval: true,
    workerData: { ...workerData, __loader: { entry, libsDir: LIBS_DIR } },
  });
}
