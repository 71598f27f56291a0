// Bundles the dashboard into dist/: app.js (Preact, uPlot and the pages), app.css, index.html.
// The API serves these files under /ui/; nothing is fetched from elsewhere at run time.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  entryPoints: { app: join(root, 'src/main.tsx') },
  outdir: dist,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: true,
  // Types come from the API and the workers by `import type` only, which esbuild erases; a value
  // import of a server package would pull Node modules in and fail here, not in a browser.
  logLevel: 'warning',
});
await copyFile(join(root, 'src/index.html'), join(dist, 'index.html'));
