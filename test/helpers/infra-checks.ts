/**
 * Checks of the deployment files against the Kubernetes and KEDA schemas and against the code. Each
 * check is a function over parsed objects that returns its findings (empty: nothing wrong), so a test
 * can run it on the real files and on a copy broken on purpose.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as k8s from 'kubernetes-models';
import * as keda from '@kubernetes-models/keda';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { parseAllDocuments } from 'yaml';
import { allQueues, QUEUE_PREFIX } from '../../libs/jobs/src/queues';
import { readApiEnv } from '../../apps/api/src/api-env';
import { readWorkerSettings } from '../../apps/worker/src/worker-settings';
import { ROOT, matchRoute, type ApiRoute } from './app-facts';

export type App = 'api' | 'worker';
export type Env = Record<string, string>;
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/**
 * Read by something other than dinoq's code: Node and Nest (NODE_ENV), the CUDA driver (its JIT
 * cache), and the AWS SDK's default credential chain (AWS_*, set by workload identity webhooks).
 */
export const THIRD_PARTY_ENV = /^(NODE_ENV|CUDA_CACHE_PATH|CUDA_CACHE_MAXSIZE|AWS_[A-Z0-9_]+)$/;

/** Without these a deployed process starts, but wrong: on 127.0.0.1 Redis, an embedded S3, no keys. */
export const REQUIRED_ENV: Record<App, string[]> = {
  api: ['REDIS_URL', 'S3_ENDPOINT', 'S3_PUBLIC_ENDPOINT', 'DINOQ_API_KEYS'],
  worker: [
    'REDIS_URL',
    'S3_ENDPOINT',
    'DINOQ_DEVICE_CLASS',
    'DINOQ_WORKER_QUEUES',
    'DINOQ_TERMINATION_GRACE_SECONDS',
  ],
};

export function loadYaml(file: string): unknown[] {
  return parseAllDocuments(fs.readFileSync(path.join(ROOT, file), 'utf8'), { merge: true }).map((doc, i) => {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) throw new Error(`${file} document ${i}: ${problem.message}`);
    return doc.toJS() as unknown;
  });
}

// ---------------------------------------------------------------------------------------------------
// Schemas

type Model = new (data: unknown) => { validate(): void };

/** The kubernetes-models (or KEDA) class of an apiVersion/kind, e.g. apps/v1 → k8s.apps.v1. */
function modelOf(apiVersion: string, kind: string): Model | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const key = group.replace(/[.-]([a-z])/g, (_w, c: string) => c.toUpperCase()) || version;
  const modules = { ...k8s, ...keda } as unknown as Record<string, Record<string, Record<string, Model>>>;
  const byVersion = group === '' ? modules[key] : modules[key]?.[version];
  return (byVersion as Record<string, Model> | undefined)?.[kind];
}

export function schemaProblems(manifests: readonly Manifest[]): string[] {
  return manifests.flatMap((m) => {
    const where = `${m.kind} ${m.metadata?.name}`;
    const Model = modelOf(m.apiVersion, m.kind);
    if (!Model) return [`${where}: no schema for ${m.apiVersion} ${m.kind}`];
    try {
      new Model(m).validate();
      return [];
    } catch (error) {
      return [`${where}: ${(error as Error).message}`];
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Environment

/** Names set that the app does not read, and required names not set. */
export function envProblems(where: string, app: App, names: readonly string[], reads: Set<string>): string[] {
  const unread = names.filter((name) => !reads.has(name) && !THIRD_PARTY_ENV.test(name));
  const missing = REQUIRED_ENV[app].filter((name) => !names.includes(name));
  const stale = REQUIRED_ENV[app].filter((name) => !reads.has(name));
  return [
    ...unread.map((name) => `${where}: sets ${name}, which the ${app} does not read`),
    ...missing.map((name) => `${where}: does not set ${name}, which the ${app} needs deployed`),
    ...stale.map((name) => `REQUIRED_ENV.${app} names ${name}, which the ${app} does not read`),
  ];
}

/** The worker's settings, or undefined where they do not parse (parseProblems reports that). */
function workerSettings(env: Env): ReturnType<typeof readWorkerSettings> | undefined {
  try {
    return readWorkerSettings(env);
  } catch {
    return undefined;
  }
}

/** Runs the app's own settings parser on the values a deployment gives it. */
export function parseProblems(where: string, app: App, env: Env): string[] {
  try {
    if (app === 'api') readApiEnv(env);
    else readWorkerSettings(env);
    return [];
  } catch (error) {
    return [`${where}: ${(error as Error).message}`];
  }
}

// ---------------------------------------------------------------------------------------------------
// Kubernetes workloads

export const ofKind = <T>(manifests: readonly Manifest[], kind: string): (Manifest & T)[] =>
  manifests.filter((m) => m.kind === kind) as (Manifest & T)[];

export const podSpec = (d: IDeployment): IPodSpec => d.spec?.template.spec as IPodSpec;

/** Which app a container runs, from its command; undefined for anything else. */
export function appOf(command: readonly string[] | undefined): App | undefined {
  const script = command?.find((part) => /^apps\/[a-z]+\/dist\/main\.js$/.test(part));
  const app = script?.split('/')[1];
  return app === 'api' || app === 'worker' ? app : undefined;
}

/**
 * A container's environment: literal values, the ConfigMaps it loads, and secret references (whose
 * values are placeholders a parser accepts).
 */
export function containerEnv(container: IContainer, manifests: readonly Manifest[]): Env {
  const env: Env = {};
  for (const source of container.envFrom ?? []) {
    const map = ofKind<{ data?: Env }>(manifests, 'ConfigMap').find(
      (m) => m.metadata.name === source.configMapRef?.name,
    );
    Object.assign(env, map?.data ?? {});
  }
  for (const entry of container.env ?? []) env[entry.name] = entry.value ?? 'secret-placeholder';
  return env;
}

export function refProblems(d: IDeployment & Manifest, manifests: readonly Manifest[]): string[] {
  const secrets = ofKind<{ stringData?: Env }>(manifests, 'Secret');
  const maps = ofKind(manifests, 'ConfigMap').map((m) => m.metadata.name);
  return (podSpec(d).containers ?? []).flatMap((c) => [
    ...(c.envFrom ?? [])
      .filter((s) => !maps.includes(s.configMapRef?.name ?? ''))
      .map((s) => `${d.metadata.name}: ConfigMap ${s.configMapRef?.name} does not exist`),
    ...(c.env ?? [])
      .map((e) => e.valueFrom?.secretKeyRef)
      .filter(
        (ref) => ref && !secrets.some((s) => s.metadata.name === ref.name && ref.key in (s.stringData ?? {})),
      )
      .map((ref) => `${d.metadata.name}: secret key ${ref?.name}/${ref?.key} does not exist`),
  ]);
}

/** HTTP probes hit public GET routes of the API, on the port it listens on. */
export function probeProblems(d: IDeployment & Manifest, routes: readonly ApiRoute[]): string[] {
  return (podSpec(d).containers ?? []).flatMap((c) =>
    (['readinessProbe', 'livenessProbe', 'startupProbe'] as const).flatMap((kind) => {
      const probe = c[kind]?.httpGet;
      if (!probe) return [];
      const where = `${d.metadata.name} ${kind}`;
      const port =
        typeof probe.port === 'string'
          ? c.ports?.find((p) => p.name === probe.port)?.containerPort
          : probe.port;
      const listens = Number(c.env?.find((e) => e.name === 'PORT')?.value ?? 3000);
      const route = matchRoute(routes, probe.path ?? '/');
      return [
        ...(route?.route.isPublic ? [] : [`${where}: ${probe.path} is not a public GET route of the API`]),
        ...(port === listens
          ? []
          : [`${where}: port ${String(probe.port)} is not the port the API listens on (${listens})`]),
      ];
    }),
  );
}

/** The worker's stop fits the pod's termination window, told to it in DINOQ_TERMINATION_GRACE_SECONDS. */
export function graceProblems(where: string, graceSeconds: number | undefined, env: Env): string[] {
  if (graceSeconds === undefined) return [`${where}: no termination grace period`];
  if (Number(env.DINOQ_TERMINATION_GRACE_SECONDS) !== graceSeconds) {
    return [
      `${where}: DINOQ_TERMINATION_GRACE_SECONDS=${env.DINOQ_TERMINATION_GRACE_SECONDS} but the grace period is ${graceSeconds} s`,
    ];
  }
  const settings = workerSettings(env);
  if (!settings) return [];
  const { shutdownGraceMs, abandonWaitMs } = settings;
  return shutdownGraceMs + abandonWaitMs < graceSeconds * 1000
    ? []
    : [
        `${where}: the worker's stop (${shutdownGraceMs} + ${abandonWaitMs} ms) does not fit ${graceSeconds} s`,
      ];
}

const quantity = (q: string | number | undefined): number => {
  const match = /^(\d+(?:\.\d+)?)([KMGT]i)?$/.exec(String(q ?? ''));
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return match ? Number(match[1]) * (match[2] ? units[match[2]] : 1) : NaN;
};

/** The sizeLimit of the emptyDir mounted at the deepest mount point above `dir`, or NaN. */
function volumeLimitAt(spec: IPodSpec, c: IContainer, dir: string): number {
  const mount = (c.volumeMounts ?? [])
    .filter((m) => dir === m.mountPath || dir.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return quantity(spec.volumes?.find((v) => v.name === mount?.name)?.emptyDir?.sizeLimit);
}

/** No API token, bounded scratch volumes, and caches that fit the volumes they live on. */
export function podSecurityProblems(d: IDeployment & Manifest, env: (c: IContainer) => Env): string[] {
  const spec = podSpec(d);
  const name = d.metadata.name;
  const emptyDirs = (spec.volumes ?? []).filter((v) => v.emptyDir);
  const scratch = emptyDirs.reduce((sum, v) => sum + quantity(v.emptyDir?.sizeLimit), 0);
  const problems = [
    ...(spec.automountServiceAccountToken === false ? [] : [`${name}: mounts a service account token`]),
    ...emptyDirs
      .filter((v) => !v.emptyDir?.sizeLimit)
      .map((v) => `${name}: emptyDir ${v.name} has no sizeLimit`),
  ];
  for (const c of spec.containers) {
    for (const side of ['requests', 'limits'] as const) {
      const storage = quantity(c.resources?.[side]?.['ephemeral-storage']);
      if (!(storage >= scratch))
        problems.push(`${name}: ${side} ephemeral-storage is below its emptyDirs' ${scratch} bytes`);
    }
    const e = env(c);
    const data = appOf(c.command) === 'worker' ? workerSettings(e)?.data : undefined;
    if (data) {
      const { shardCacheDir, shardCacheBytes } = data;
      if (!(volumeLimitAt(spec, c, shardCacheDir) >= shardCacheBytes))
        problems.push(
          `${name}: the shard cache (${shardCacheDir}) is not on a volume that holds ${shardCacheBytes} bytes`,
        );
    }
    if (e.CUDA_CACHE_PATH && !(volumeLimitAt(spec, c, e.CUDA_CACHE_PATH) >= Number(e.CUDA_CACHE_MAXSIZE)))
      problems.push(`${name}: CUDA_CACHE_PATH is not on a volume that holds CUDA_CACHE_MAXSIZE`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// NetworkPolicies

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
  Object.entries(selector ?? {}).every(([key, value]) => labels[key] === value);

/**
 * Every pod is isolated both ways, may resolve names, reach Redis and S3 on the ports the ConfigMap's
 * URLs name, and take traffic only where it serves (the API's port; workers: nothing).
 */
export function networkProblems(
  d: IDeployment & Manifest,
  manifests: readonly Manifest[],
  config: Env,
): string[] {
  const labels = d.spec?.template.metadata?.labels ?? {};
  const policies = ofKind<INetworkPolicy>(manifests, 'NetworkPolicy').filter((p) =>
    selects(p.spec?.podSelector.matchLabels, labels),
  );
  const types = new Set<string>(policies.flatMap((p) => p.spec?.policyTypes ?? []));
  const egress = policies.flatMap((p) => p.spec?.egress ?? []).flatMap((rule) => rule.ports ?? []);
  const ingress = policies.flatMap((p) => p.spec?.ingress ?? []).flatMap((rule) => rule.ports ?? []);
  const urlPort = (url: string): number => {
    const u = new URL(url);
    return Number(u.port || (u.protocol === 'https:' ? 443 : u.protocol.startsWith('redis') ? 6379 : 80));
  };
  const needs = {
    'DNS (53/UDP)': 53,
    [`Redis (${config.REDIS_URL})`]: urlPort(config.REDIS_URL),
    [`S3 (${config.S3_ENDPOINT})`]: urlPort(config.S3_ENDPOINT),
  };
  const name = d.metadata.name;
  const served = podSpec(d).containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
  return [
    ...['Ingress', 'Egress']
      .filter((t) => !types.has(t))
      .map((t) => `${name}: no ${t} NetworkPolicy selects its pods`),
    ...Object.entries(needs)
      .filter(([, port]) => !egress.some((p) => p.port === port))
      .map(([what]) => `${name}: no egress to ${what}`),
    ...ingress
      .filter((p) => !served.includes(Number(p.port)))
      .map((p) => `${name}: ingress on ${String(p.port)}, where nothing listens`),
    ...served
      .filter((port) => !ingress.some((p) => p.port === port))
      .map((port) => `${name}: no ingress to port ${port}`),
  ];
}

// ---------------------------------------------------------------------------------------------------
// KEDA

type Trigger = IScaledObject['spec']['triggers'][number];

/** The queue a trigger measures: the API's demand route, or a BullMQ list `<prefix>:<queue>:<state>`. */
function triggerQueue(
  t: Trigger,
  manifests: readonly Manifest[],
  routes: readonly ApiRoute[],
  prefix: string,
): string | string[] {
  const meta = t.metadata as Env;
  if (t.type === 'redis') {
    const match = new RegExp(`^${prefix}:([a-z-]+):(wait|active|prioritized|delayed)$`).exec(
      meta.listName ?? '',
    );
    return match ? match[1] : [`list ${meta.listName} is not a BullMQ list of prefix ${prefix}`];
  }
  if (t.type !== 'metrics-api') return [`trigger type ${t.type} is not checked here`];
  const url = new URL(meta.url ?? '');
  const [service, namespace] = url.hostname.split('.');
  const svc = ofKind<{ spec?: { ports?: { port: number }[] } }>(manifests, 'Service').find(
    (s) => s.metadata.name === service && s.metadata.namespace === namespace,
  );
  const hit = matchRoute(routes, url.pathname);
  const auth = t.authenticationRef?.name;
  const problems = [
    ...(svc?.spec?.ports?.some((p) => p.port === Number(url.port || 80))
      ? []
      : [`${url.host} is no Service port`]),
    ...(hit ? [] : [`${url.pathname} is not a GET route of the API`]),
    ...(hit &&
    !hit.route.isPublic &&
    !ofKind(manifests, 'TriggerAuthentication').some((a) => a.metadata.name === auth)
      ? [`${url.pathname} needs an API key and TriggerAuthentication ${auth} does not exist`]
      : []),
  ];
  return problems.length > 0 ? problems : (hit?.params.queue ?? [`${url.pathname} names no queue`]);
}

/**
 * Each ScaledObject measures exactly the queues its Deployment consumes and adds every trigger in its
 * formula; pools sharing queues take demand in file order, each after the earlier pools' maximum.
 */
export function kedaProblems(
  manifests: readonly Manifest[],
  routes: readonly ApiRoute[],
  prefix: string,
): string[] {
  const problems: string[] = [];
  const earlier: { queues: string; max: number }[] = [];
  for (const so of ofKind<IScaledObject>(manifests, 'ScaledObject')) {
    const where = `ScaledObject ${so.metadata.name}`;
    const target = ofKind<IDeployment>(manifests, 'Deployment').find(
      (d) => d.metadata.name === so.spec.scaleTargetRef.name,
    );
    if (!target) {
      problems.push(`${where}: target ${so.spec.scaleTargetRef.name} is not a Deployment here`);
      continue;
    }
    const consumed = (containerEnv(podSpec(target).containers[0], manifests).DINOQ_WORKER_QUEUES ?? '').split(
      ',',
    );
    const measured = so.spec.triggers.map((t) => {
      const queue = triggerQueue(t, manifests, routes, prefix);
      if (Array.isArray(queue)) problems.push(...queue.map((p) => `${where} ${t.name}: ${p}`));
      else if (!consumed.includes(queue) || !allQueues.includes(queue as never))
        problems.push(
          `${where} ${t.name}: measures queue ${queue}, which ${target.metadata.name} does not consume`,
        );
      return typeof queue === 'string' ? queue : '';
    });
    problems.push(
      ...consumed.filter((q) => !measured.includes(q)).map((q) => `${where}: no trigger for queue ${q}`),
    );
    // scalingModifiers (KEDA 2.12) is newer than the bundled KEDA types.
    const advanced = so.spec.advanced as { scalingModifiers?: { formula?: string } } | undefined;
    const formula = advanced?.scalingModifiers?.formula ?? '';
    const names = new Set<string>(
      (formula.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []).filter((n) => n !== 'max'),
    );
    const triggers = so.spec.triggers.map((t) => t.name ?? '');
    problems.push(...triggers.filter((n) => !names.has(n)).map((n) => `${where}: formula leaves out ${n}`));
    problems.push(
      ...[...names]
        .filter((n) => !triggers.includes(n))
        .map((n) => `${where}: formula names ${n}, no trigger`),
    );
    const key = [...consumed].sort().join(',');
    const ahead = earlier.filter((e) => e.queues === key).reduce((sum, e) => sum + e.max, 0);
    const subtracted = Number(/-\s*(\d+)/.exec(formula)?.[1] ?? 0);
    if (subtracted !== ahead)
      problems.push(`${where}: formula subtracts ${subtracted}, the pools before it hold ${ahead}`);
    earlier.push({ queues: key, max: so.spec.maxReplicaCount ?? 100 });
  }
  return problems;
}

/** One BullMQ key prefix for every dinoq container (the API reads the queues the workers fill). */
export function prefixOf(envs: readonly Env[]): string[] {
  return [...new Set(envs.map((env) => env.DINOQ_QUEUE_PREFIX || QUEUE_PREFIX))];
}

// ---------------------------------------------------------------------------------------------------
// Dockerfiles

export interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions with comment lines dropped (even inside a continued one) and continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  return text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** .dockerignore patterns as regular expressions over context-relative paths. */
export function ignoreMatchers(text: string): RegExp[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((pattern) => {
      // `**/` is any run of leading folders; `*` and `?` stay within one path segment.
      const source = pattern
        .split('**/')
        .map((part) =>
          part
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]'),
        )
        .join('(?:.*/)?');
      return new RegExp(`^${source}(?:/.*)?$`);
    });
}

const EXACT_TAG = /^[a-z0-9./-]+:(\d+\.\d+\.\d+[^@]*|RELEASE\.[^@]+)(@sha256:[0-9a-f]{64})?$/;

/**
 * COPY sources exist and survive .dockerignore; base images name an exact version (or a digest), Node
 * images the current LTS line; the final stage's ENV names are read by the app the image runs.
 */
export function dockerfileProblems(
  file: string,
  instructions: readonly Instruction[],
  ignored: readonly RegExp[],
  reads: Record<App, Set<string>>,
): string[] {
  const args = new Map<string, string>();
  const problems: string[] = [];
  let finalEnv: string[] = [];
  let app: App | undefined;
  for (const { keyword, args: rest } of instructions) {
    if (keyword === 'ARG' && rest.includes('=')) {
      const [name, value] = rest.split('=');
      args.set(name, value);
    } else if (keyword === 'FROM') {
      const image = rest.split(/\s+/)[0].replace(/\$\{?(\w+)\}?/g, (_w, n: string) => args.get(n) ?? '');
      finalEnv = [];
      const isStage = instructions.some(
        (i) => i.keyword === 'FROM' && new RegExp(`\\bAS ${image}$`, 'i').test(i.args),
      );
      if (!isStage && !EXACT_TAG.test(image))
        problems.push(`${file}: base image ${image} is not pinned to an exact version`);
      if (/^node:/.test(image) && !/^node:24\./.test(image))
        problems.push(`${file}: ${image} is not Node 24`);
    } else if (keyword === 'COPY' && !rest.includes('--from=')) {
      const operands = rest.split(/\s+/).filter((t) => !t.startsWith('--'));
      for (const source of operands.slice(0, -1)) {
        const dir = path.dirname(source);
        const pattern = new RegExp(
          `^${path.basename(source.replace(/\/$/, '')).replace(/\./g, '\\.').replace(/\*/g, '.*')}$`,
        );
        const hits = fs.existsSync(path.join(ROOT, dir))
          ? fs
              .readdirSync(path.join(ROOT, dir))
              .filter((e) => pattern.test(e))
              .map((e) => path.join(dir, e))
          : [];
        if (hits.length === 0) problems.push(`${file}: COPY ${source} matches nothing`);
        problems.push(
          ...hits
            .filter((h) => ignored.some((r) => r.test(h)))
            .map((h) => `${file}: COPY ${h} is excluded by .dockerignore`),
        );
      }
    } else if (keyword === 'ENV') {
      finalEnv.push(...[...rest.matchAll(/(\w+)=/g)].map((m) => m[1]));
    } else if (keyword === 'CMD') {
      app = appOf(JSON.parse(rest) as string[]);
    }
  }
  if (!app) return [...problems, `${file}: CMD starts neither app`];
  const unread = finalEnv.filter((name) => !reads[app].has(name) && !THIRD_PARTY_ENV.test(name));
  return [...problems, ...unread.map((name) => `${file}: ENV ${name} is not read by the ${app}`)];
}
