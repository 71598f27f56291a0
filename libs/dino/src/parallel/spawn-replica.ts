import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * Starts a replica worker thread. From the built library it runs `replica-worker.js` beside
 * this file. From TypeScript sources (tests, ts-jest) there is no JS file to run, so the thread
 * starts with a small loader that transpiles each `.ts` file on require (TypeScript's
 * `transpileModule`, no type check) and resolves `@dinoq/<lib>` to `libs/<lib>/src/index.ts`.
 */

const TS_LOADER = `
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { workerData } = require('node:worker_threads');
const { entry, libsDir } = workerData.loader;
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

export function spawnReplica(): Worker {
  if (path.extname(__filename) === '.js') return new Worker(path.join(__dirname, 'replica-worker.js'));
  return new Worker(TS_LOADER, {
    eval: true,
    workerData: {
      loader: {
        entry: path.join(__dirname, 'replica-worker.ts'),
        libsDir: path.resolve(__dirname, '..', '..', '..'),
      },
    },
  });
}
