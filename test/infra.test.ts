/**
 * The deployment files (docker-compose.yml, infra/docker, infra/k8s) checked against the Kubernetes and
 * KEDA schemas and against the code: the environment each app reads, the API's routes, the queues,
 * the worker's shutdown. No Docker engine or cluster runs here; every check below is also run on a
 * copy broken on purpose, to show it reports the fault.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IContainer } from 'kubernetes-models/v1';
import { QUEUE_PREFIX } from '../libs/jobs/src/queues';
import { ROOT, apiGetRoutes, envReadBy } from './helpers/app-facts';
import {
  appOf,
  containerEnv,
  dockerfileProblems,
  envProblems,
  graceProblems,
  ignoreMatchers,
  kedaProblems,
  loadYaml,
  networkProblems,
  ofKind,
  parseDockerfile,
  parseProblems,
  podSecurityProblems,
  podSpec,
  prefixOf,
  probeProblems,
  refProblems,
  schemaProblems,
  type App,
  type Env,
  type Manifest,
} from './helpers/infra-checks';

const reads: Record<App, Set<string>> = { api: envReadBy('api'), worker: envReadBy('worker') };
const routes = apiGetRoutes();
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');

const K8S = 'infra/k8s';
const k8sFiles = fs.readdirSync(path.join(ROOT, K8S)).filter((f) => f.endsWith('.yaml'));
const manifests = k8sFiles
  .filter((f) => f !== 'kustomization.yaml')
  .flatMap((f) => loadYaml(`${K8S}/${f}`)) as Manifest[];
type Deployment = IDeployment & Manifest;
const configOf = (ms: readonly Manifest[]): Env =>
  ofKind<{ data: Env }>(ms, 'ConfigMap').find((m) => m.metadata.name === 'dinoq-config')?.data ?? {};

/** Every finding of every Kubernetes check, over a set of manifests. */
function k8sProblems(ms: readonly Manifest[]): string[] {
  const deployments = ofKind<Deployment>(ms, 'Deployment');
  const envOf = (c: IContainer): Env => containerEnv(c, ms);
  const containers = deployments.flatMap((d) =>
    podSpec(d).containers.map((c) => ({ d, c, app: appOf(c.command) })),
  );
  const prefixes = prefixOf(containers.map(({ c }) => envOf(c)));
  return [
    ...schemaProblems(ms),
    ...containers.flatMap(({ d, c, app }) => {
      const where = `${d.metadata.name}/${c.name}`;
      if (!app) return [`${where}: runs neither app`];
      const env = envOf(c);
      return [
        ...envProblems(where, app, Object.keys(env), reads[app]),
        ...parseProblems(where, app, env),
        ...(app === 'worker' ? graceProblems(where, podSpec(d).terminationGracePeriodSeconds, env) : []),
      ];
    }),
    ...deployments.flatMap((d) => [
      ...refProblems(d, ms),
      ...probeProblems(d, routes),
      ...podSecurityProblems(d, envOf),
      ...networkProblems(d, ms, configOf(ms)),
    ]),
    ...(prefixes.length === 1 ? [] : [`containers use several queue prefixes: ${prefixes.join(', ')}`]),
    ...kedaProblems(ms, routes, prefixes[0]),
  ];
}

/** A copy of the manifests, changed. */
function edited(change: (ms: Manifest[]) => void): Manifest[] {
  const copy = structuredClone(manifests);
  change(copy);
  return copy;
}

/** A copy of the manifests with one object changed. */
const withManifest = <T = Manifest>(
  kind: string,
  name: string,
  change: (m: Manifest & T) => void,
): Manifest[] =>
  edited((ms) => {
    const m = ms.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
    if (!m) throw new Error(`no ${kind} ${name}`);
    change(m as Manifest & T);
  });

/** A copy of the manifests with one Deployment's first container changed. */
const withContainer = (name: string, change: (c: IContainer, d: Deployment) => void): Manifest[] =>
  withManifest<Deployment>('Deployment', name, (d) => change(podSpec(d).containers[0], d));

const setEnv = (c: IContainer, name: string, value: string | undefined): void => {
  c.env = (c.env ?? []).filter((e) => e.name !== name);
  if (value !== undefined) c.env.push({ name, value });
};

describe('Kubernetes manifests', () => {
  test('are valid objects that agree with the code', () => {
    expect(ofKind(manifests, 'Deployment').length).toBeGreaterThanOrEqual(4);
    expect(k8sProblems(manifests)).toEqual([]);
  });

  test('kustomization.yaml lists every manifest but the secret template', () => {
    const [kustomization] = loadYaml(`${K8S}/kustomization.yaml`) as { resources: string[] }[];
    const expected = k8sFiles.filter((f) => f !== 'kustomization.yaml' && f !== 'secret.template.yaml');
    expect([...kustomization.resources].sort()).toEqual(expected.sort());
  });

  const api = 'dinoq-api';
  const gpu = 'dinoq-worker-gpu';
  const faults: [string, Manifest[], RegExp][] = [
    [
      'a field of the wrong type',
      withContainer(api, (c) => ((c.ports ?? [])[0].containerPort = 'http' as never)),
      /containerPort must be integer/,
    ],
    [
      'a probe on a route that does not exist',
      withContainer(api, (c) => (c.readinessProbe!.httpGet!.path = '/healthz')),
      /\/healthz is not a public GET route/,
    ],
    [
      'a probe on a route that needs a key',
      withContainer(api, (c) => (c.livenessProbe!.httpGet!.path = '/metrics')),
      /\/metrics is not a public GET route/,
    ],
    [
      'a probe on the wrong port',
      withContainer(api, (c) => setEnv(c, 'PORT', '8080')),
      /not the port the API listens on \(8080\)/,
    ],
    [
      'a variable the app does not read',
      withContainer(gpu, (c) => setEnv(c, 'DINOQ_GPU_MEMORY', '80000000000')),
      /sets DINOQ_GPU_MEMORY, which the worker does not read/,
    ],
    [
      'an API-only variable on a worker',
      withContainer(gpu, (c) => setEnv(c, 'DINOQ_API_KEYS', 'k')),
      /sets DINOQ_API_KEYS, which the worker does not read/,
    ],
    [
      'a required variable left out',
      withContainer(api, (c) => setEnv(c, 'DINOQ_API_KEYS', undefined)),
      /does not set DINOQ_API_KEYS/,
    ],
    [
      'a value the app refuses',
      withContainer(gpu, (c) => setEnv(c, 'DINOQ_WORKER_QUEUES', 'train-gpu,train-tpu')),
      /unknown queues \(train-tpu\)/,
    ],
    [
      'a termination grace the worker is not told',
      withContainer(gpu, (c, d) => (podSpec(d).terminationGracePeriodSeconds = 900)),
      /but the grace period is 900 s/,
    ],
    [
      'a shutdown grace longer than the pod gets',
      withContainer(gpu, (c) => setEnv(c, 'DINOQ_SHUTDOWN_GRACE_MS', '1799000')),
      /does not fit DINOQ_TERMINATION_GRACE_SECONDS/,
    ],
    [
      'a queue prefix only some containers use',
      withContainer(gpu, (c) => setEnv(c, 'DINOQ_QUEUE_PREFIX', 'other')),
      /several queue prefixes/,
    ],
    [
      'a missing secret key',
      withContainer(
        api,
        (c) => (c.env!.find((e) => e.name === 'DINOQ_API_KEYS')!.valueFrom!.secretKeyRef!.key = 'API_KEYS'),
      ),
      /secret key dinoq-secrets\/API_KEYS does not exist/,
    ],
    [
      'a mounted service account token',
      withContainer(gpu, (c, d) => (podSpec(d).automountServiceAccountToken = true)),
      /mounts a service account token/,
    ],
    [
      'an unbounded scratch volume',
      withContainer(gpu, (c, d) => delete podSpec(d).volumes![0].emptyDir!.sizeLimit),
      /has no sizeLimit/,
    ],
    [
      'a shard cache larger than its volume',
      withContainer(gpu, (c) => setEnv(c, 'DINOQ_SHARD_CACHE_MB', '20000')),
      /shard cache .* is not on a volume that holds/,
    ],
    [
      'a CUDA cache off its volume',
      withContainer(gpu, (c) => setEnv(c, 'CUDA_CACHE_PATH', '/home/node/.nv')),
      /CUDA_CACHE_PATH is not on a volume/,
    ],
    [
      'ephemeral storage below the volumes',
      withContainer(gpu, (c) => (c.resources!.limits!['ephemeral-storage'] = '1Gi')),
      /limits ephemeral-storage is below/,
    ],
    [
      'a Redis port the policy blocks',
      withManifest('ConfigMap', 'dinoq-config', (m) => ((m.data as Env).REDIS_URL = 'redis://redis:6380')),
      /no egress to Redis/,
    ],
    [
      'a pod no policy isolates',
      edited((ms) =>
        ofKind<INetworkPolicy>(ms, 'NetworkPolicy').forEach((p) => {
          p.spec!.policyTypes = p.spec!.policyTypes!.filter((t) => t !== 'Ingress');
        }),
      ),
      /dinoq-worker-cpu: no Ingress NetworkPolicy/,
    ],
    [
      'ingress to a worker',
      withManifest(
        'NetworkPolicy',
        'dinoq-worker',
        (m) => ((m.spec as { ingress: unknown[] }).ingress = [{ ports: [{ port: 9000 }] }]),
      ),
      /dinoq-worker-gpu: ingress on 9000, where nothing listens/,
    ],
    [
      'no DNS egress',
      withManifest('NetworkPolicy', 'dinoq-dns', (m) => ((m.spec as { egress: unknown[] }).egress = [])),
      /no egress to DNS/,
    ],
    [
      'a demand trigger on a queue the pool does not run',
      withManifest(
        'ScaledObject',
        gpu,
        (m) =>
          ((m.spec as { triggers: { metadata: Env }[] }).triggers[0].metadata.url =
            'http://dinoq-api.dinoq.svc.cluster.local/metrics/queues/train-cpu/demand'),
      ),
      /measures queue train-cpu, which dinoq-worker-gpu does not consume/,
    ],
    [
      'a demand trigger on a route that does not exist',
      withManifest(
        'ScaledObject',
        gpu,
        (m) =>
          ((m.spec as { triggers: { metadata: Env }[] }).triggers[0].metadata.url =
            'http://dinoq-api.dinoq.svc.cluster.local/queues/train-gpu/demand'),
      ),
      /is not a GET route of the API/,
    ],
    [
      'a Redis list of another prefix',
      withManifest(
        'ScaledObject',
        gpu,
        (m) =>
          ((m.spec as { triggers: unknown[] }).triggers[0] = {
            type: 'redis',
            name: 'train_gpu',
            metadata: { listName: 'bull:train-gpu:wait', address: 'redis:6379' },
          }),
      ),
      new RegExp(`is not a BullMQ list of prefix ${QUEUE_PREFIX}`),
    ],
    [
      'a formula that forgets a trigger',
      withManifest(
        'ScaledObject',
        gpu,
        (m) =>
          ((m.spec as { advanced: { scalingModifiers: Env } }).advanced.scalingModifiers.formula =
            'train_gpu'),
      ),
      /formula leaves out evaluate_gpu/,
    ],
    [
      'a spill-over out of step with the first pool',
      withManifest('ScaledObject', gpu, (m) => ((m.spec as { maxReplicaCount: number }).maxReplicaCount = 8)),
      /subtracts 4, the pools before it hold 8/,
    ],
  ];
  test.each(faults)('reports %s', (_name, broken, expected) => {
    expect(k8sProblems(broken)).toContainEqual(expect.stringMatching(expected));
  });
});

// ---------------------------------------------------------------------------------------------------

const DOCKERFILES = fs.readdirSync(path.join(ROOT, 'infra/docker')).map((f) => `infra/docker/${f}`);
const ignored = ignoreMatchers(read('.dockerignore'));
const dockerProblems = (file: string, text = read(file), ignore = ignored): string[] =>
  dockerfileProblems(file, parseDockerfile(text), ignore, reads);

describe('Dockerfiles', () => {
  test.each(DOCKERFILES)(
    '%s copies what exists, on pinned Node 24 bases, setting what the app reads',
    (file) => {
      expect(dockerProblems(file)).toEqual([]);
    },
  );

  test('.dockerignore keeps host dependencies and build outputs out of the context', () => {
    const kept = [
      'node_modules',
      'libs/native-blas/build',
      'libs/native-blas/build/Release/x.node',
      'apps/api/dist',
      'coverage',
    ];
    expect(kept.filter((p) => !ignored.some((r) => r.test(p)))).toEqual([]);
  });

  const cpu = 'infra/docker/worker-cpu.Dockerfile';
  const faults: [string, string, RegExp[], RegExp][] = [
    [
      'a COPY source that does not exist',
      read(cpu).replace('COPY apps/ apps/', 'COPY app/ apps/'),
      ignored,
      /COPY app\/ matches nothing/,
    ],
    [
      'a COPY of an ignored path',
      read(cpu),
      [...ignored, /^libs(\/.*)?$/],
      /COPY libs is excluded by .dockerignore/,
    ],
    [
      'a floating base tag',
      read(cpu).replace(/node:24\.\d+\.\d+-/, 'node:24-'),
      ignored,
      /node:24-bookworm-slim is not pinned/,
    ],
    [
      'another Node line',
      read(cpu).replace(/node:24\.\d+\.\d+/, 'node:20.19.5'),
      ignored,
      /node:20\.19\.5-bookworm-slim is not Node 24/,
    ],
    [
      'an ENV the app does not read',
      read(cpu).replace('DINOQ_DEVICE_CLASS=cpu', 'DINOQ_DEVICE=cpu'),
      ignored,
      /ENV DINOQ_DEVICE is not read/,
    ],
  ];
  test.each(faults)('reports %s', (_name, text, ignore, expected) => {
    expect(dockerProblems(cpu, text, ignore)).toContainEqual(expect.stringMatching(expected));
  });
});

// ---------------------------------------------------------------------------------------------------

interface ComposeService {
  build?: { context: string; dockerfile: string };
  environment?: Env;
  stop_grace_period?: string;
}
const COMPOSE = 'docker-compose.yml';
const compose = (loadYaml(COMPOSE)[0] as { services: Record<string, ComposeService> }).services;
const seconds = (duration = ''): number | undefined => {
  const match = /^(\d+)(s|m)$/.exec(duration);
  return match ? Number(match[1]) * (match[2] === 'm' ? 60 : 1) : undefined;
};

/** Built services run a Dockerfile that exists and set only what their app reads; workers fit their stop. */
function composeProblems(services: Record<string, ComposeService>): string[] {
  return Object.entries(services)
    .filter(([, s]) => s.build)
    .flatMap(([name, s]) => {
      const dockerfile = path.join(s.build!.context, s.build!.dockerfile);
      if (!fs.existsSync(path.join(ROOT, dockerfile))) return [`${name}: ${dockerfile} does not exist`];
      const cmd = parseDockerfile(read(dockerfile)).find((i) => i.keyword === 'CMD');
      const app = appOf(JSON.parse(cmd?.args ?? '[]') as string[]);
      if (!app) return [`${name}: runs neither app`];
      const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
      return [
        ...envProblems(name, app, Object.keys(env), reads[app]),
        ...parseProblems(name, app, env),
        ...(app === 'worker' ? graceProblems(name, seconds(s.stop_grace_period), env) : []),
      ];
    });
}

describe(COMPOSE, () => {
  test('builds every service from a Dockerfile here and sets what its app reads', () => {
    expect(Object.values(compose).filter((s) => s.build).length).toBeGreaterThanOrEqual(4);
    expect(composeProblems(compose)).toEqual([]);
  });

  const broken = (
    change: (services: Record<string, ComposeService>) => void,
  ): Record<string, ComposeService> => {
    const copy = structuredClone(compose);
    change(copy);
    return copy;
  };
  const faults: [string, Record<string, ComposeService>, RegExp][] = [
    [
      'a variable the app does not read',
      broken((s) => (s.api.environment!.S3_PUBLIC_URL = 'x')),
      /sets S3_PUBLIC_URL/,
    ],
    [
      'a missing Dockerfile',
      broken((s) => (s.api.build!.dockerfile = 'infra/docker/api2.Dockerfile')),
      /does not exist/,
    ],
    [
      'a stop grace the worker is not told',
      broken((s) => (s['worker-cpu'].stop_grace_period = '10m')),
      /grace period is 600 s/,
    ],
  ];
  test.each(faults)('reports %s', (_name, services, expected) => {
    expect(composeProblems(services)).toContainEqual(expect.stringMatching(expected));
  });
});
