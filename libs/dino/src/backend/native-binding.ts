/**
 * Finds the OpenBLAS addon (@dinoq/native-blas) for the native matmul kernels, or says why not.
 *
 * The package is optional: its install compiles C against the system OpenBLAS and may fail, and
 * the workspace may not be linked at all. `DINOQ_NATIVE_BLAS` chooses: `auto` (default) uses the
 * addon when it loads, `off` never does, `on` makes a missing addon an error.
 *
 * `nativeBlasBinding` checks that the loaded module has every function the kernels use.
 */
import type { NativeBlas } from '@dinoq/native-blas';

/** Only the type is imported: the package itself is loaded with `require` and may be missing. */
export type NativeBlasBinding = NativeBlas;

export type NativeBlasMode = 'auto' | 'on' | 'off';

export type NativeBlasLookup =
  { blas: NativeBlasBinding; reason?: undefined } | { blas: null; reason: string };

const PACKAGE = '@dinoq/native-blas';
const FUNCTIONS = [
  'sgemm',
  'sgemmBatch',
  'biasActivation',
  'unary',
  'swapAxes',
  'columnSums',
  'setThreads',
  'threads',
  'info',
] as const;

export function nativeBlasMode(): NativeBlasMode {
  const raw = process.env.DINOQ_NATIVE_BLAS;
  const v = (raw ?? '').trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'on' || v === 'off') return v;
  throw new Error(`DINOQ_NATIVE_BLAS="${raw}" must be "auto", "on" or "off"`);
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

interface AddonPackage {
  loadNativeBlas(): { blas: unknown; reason?: string };
}

/** The addon, unless `DINOQ_NATIVE_BLAS=off` or it cannot be loaded. Never throws for a missing addon. */
export function nativeBlasBinding(): NativeBlasLookup {
  if (nativeBlasMode() === 'off') return { blas: null, reason: 'DINOQ_NATIVE_BLAS=off' };
  let pkg: AddonPackage;
  try {
    pkg = require(PACKAGE) as AddonPackage;
  } catch (e) {
    return { blas: null, reason: `${PACKAGE} is not installed: ${firstLine(e)}` };
  }
  const loaded = pkg.loadNativeBlas();
  if (!loaded.blas) return { blas: null, reason: loaded.reason ?? `${PACKAGE} did not load` };
  const blas = loaded.blas as Record<string, unknown>;
  const missing = FUNCTIONS.filter((f) => typeof blas[f] !== 'function');
  if (missing.length > 0) {
    return {
      blas: null,
      reason: `${PACKAGE} lacks ${missing.join(', ')}; rebuild it (npm rebuild -w ${PACKAGE})`,
    };
  }
  return { blas: loaded.blas as NativeBlasBinding };
}
