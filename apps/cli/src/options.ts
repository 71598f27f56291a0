import { parseDataThreads, type DataThreadSetting } from '@dinoq/data';
import { parseReplicaSetting, type ReplicaSetting } from '@dinoq/dino';
import * as fs from 'node:fs';
import { mergeConfig, presetNames, resolveRunConfig, type PresetName, type RunConfig } from '@dinoq/config';

/** Parses `a.b.c=value` into {a:{b:{c:value}}}; values are JSON when they parse, else strings. */
export function parseAssignment(text: string): Record<string, unknown> {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--set expects path=value, got "${text}"`);
  const keys = text.slice(0, eq).split('.');
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  return keys.reduceRight<unknown>((acc, k) => ({ [k]: acc }), value) as Record<string, unknown>;
}

export interface ConfigFlags {
  preset?: string;
  config?: string;
  set?: string[];
}

/** Preset, then a JSON file, then --set assignments, validated once at the end. */
export function configFromFlags(flags: ConfigFlags): RunConfig {
  if (flags.preset && !presetNames.includes(flags.preset as PresetName)) {
    throw new Error(`unknown preset "${flags.preset}" (known: ${presetNames.join(', ')})`);
  }
  let overrides: unknown = {};
  if (flags.config) {
    try {
      overrides = JSON.parse(fs.readFileSync(flags.config, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read config file ${flags.config}: ${(e as Error).message}`);
    }
  }
  for (const s of flags.set ?? []) overrides = mergeConfig(overrides, parseAssignment(s));
  return resolveRunConfig(flags.preset as PresetName | undefined, overrides);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}

/** `auto` or a replica count (see resolveReplicas). */
export function replicaSetting(v: string): ReplicaSetting {
  return parseReplicaSetting(v, '--replicas');
}

/** `auto` or a non-negative integer: augmentation threads (see resolveDataThreads). */
export function dataThreadSetting(v: string): DataThreadSetting {
  return parseDataThreads(v, '--data-threads');
}
