import type { z } from 'zod';
import { runConfigSchema } from './run-config';

/*
 * Dotted paths into the run config (`optim.lr`, `optim.warmupFor.fraction`), checked against the
 * schema itself, so a sweep or an override naming a field that does not exist is refused with the
 * fields that do.
 */

type AnySchema = z.ZodType & {
  def: { type: string; innerType?: AnySchema };
  shape?: Record<string, AnySchema>;
};

/** Looks through default/optional/nullable wrappers to the schema they hold. */
function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  while (current.def.innerType) current = current.def.innerType;
  return current;
}

/** Null when `path` names a run-config field, else why not (with the fields that exist there). */
export function configPathProblem(path: string): string | null {
  let schema = unwrap(runConfigSchema as unknown as AnySchema);
  const parts = path.split('.');
  for (const [i, part] of parts.entries()) {
    const where = parts.slice(0, i).join('.') || 'the run config';
    const shape = schema.def.type === 'object' ? schema.shape : undefined;
    if (!shape) return `${where} has no fields (it is a ${schema.def.type})`;
    const field = Object.hasOwn(shape, part) ? shape[part] : undefined;
    if (!field) return `unknown field "${part}" in ${where} (known: ${Object.keys(shape).join(', ')})`;
    schema = unwrap(field);
  }
  return null;
}

/** {a:{b:value}} for `a.b`: the override that sets one path. */
export function overrideAt(path: string, value: unknown): Record<string, unknown> {
  return path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<
    string,
    unknown
  >;
}
