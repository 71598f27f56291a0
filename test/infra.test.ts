/**
 * Static checks of the deployment files (docker-compose.yml, infra/docker, infra/k8s). No Docker engine
 * or cluster is available where the tests run, so this checks what can be checked without one: the files
 * parse, they reference files, queues, variables and objects that exist, and they agree with each other.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { QUEUE_PREFIX, allQueues } from '../libs/jobs/src/queues';

const ROOT = path.resolve(__dirname, '..');

/** The environment the apps read; the manifests may set nothing else. */
const DOCUMENTED_ENV = new Set([
  'PORT',
  'REDIS_URL',
  'S3_ENDPOINT',
  'S3_BUCKET',
  'S3_REGION',
  'S3_ACCESS_KEY_ID',
  'S3_SECRET_ACCESS_KEY',
  'DINOQ_API_KEYS',
  'DINOQ_BACKEND',
  'DINOQ_DEVICE_CLASS',
  'DINOQ_WORKER_QUEUES',
  'DINOQ_TRAIN_REPLICAS',
  'DINOQ_DATA_THREADS',
  'NODE_OPTIONS',
]);
/** Variables an image sets for its runtime (Node, the CUDA driver's JIT cache), not for the apps. */
const IMAGE_ENV = new Set(['NODE_ENV', 'CUDA_CACHE_PATH', 'CUDA_CACHE_MAXSIZE']);
/** Variables of third-party images in the compose file, by service. */
const THIRD_PARTY_ENV: Record<string, string[]> = { minio: ['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD'] };

const QUEUES: readonly string[] = allQueues;
const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
const DEVICE_CLASSES = ['gpu', 'cpu'];
const START_COMMANDS = {
  api: ['node', 'apps/api/dist/main.js'],
  worker: ['node', 'apps/worker/dist/main.js'],
};
const TINI = ['/usr/bin/tini', '--'];
const K8S_NAMESPACE = 'dinoq';

// ---------------------------------------------------------------------------------------------------
// Reading untyped YAML with errors that say where the problem is.

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mapping(value: unknown, where: string): Mapping {
  if (!isMapping(value)) throw new Error(`${where}: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list, got ${JSON.stringify(value)}`);
  return value;
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new Error(`${where}: expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Follows `keys` from `value`; throws naming the first missing key. */
function dig(value: unknown, where: string, ...keys: string[]): unknown {
  let node = value;
  let at = where;
  for (const key of keys) {
    const parent = mapping(node, at);
    at = `${at}.${key}`;
    if (!(key in parent)) throw new Error(`${at} is missing`);
    node = parent[key];
  }
  return node;
}

function readRepoFile(relativePath: string): string {
  return fs.readFileSync(path.join(ROOT, relativePath), 'utf8');
}

function existsInRepo(relativePath: string): boolean {
  return fs.existsSync(path.join(ROOT, relativePath));
}

/** Every document of a YAML file, with merge keys (`<<:`) resolved as Docker Compose does. */
function loadYaml(relativePath: string): unknown[] {
  const documents = parseAllDocuments(readRepoFile(relativePath), { merge: true });
  return documents.map((document, index) => {
    const problem = document.errors[0] ?? document.warnings[0];
    if (problem) throw new Error(`${relativePath} document ${index}: ${problem.message}`);
    return document.toJS() as unknown;
  });
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Checks a worker's queue, backend and device settings against each other; returns its queues. */
function checkWorkerEnv(env: Record<string, string>, where: string): string[] {
  const queues = splitList(text(env.DINOQ_WORKER_QUEUES, `${where} DINOQ_WORKER_QUEUES`));
  const backend = text(env.DINOQ_BACKEND, `${where} DINOQ_BACKEND`);
  const deviceClass = text(env.DINOQ_DEVICE_CLASS, `${where} DINOQ_DEVICE_CLASS`);
  expect({ where, unknownQueues: queues.filter((queue) => !QUEUES.includes(queue)) }).toEqual({
    where,
    unknownQueues: [],
  });
  expect(BACKENDS).toContain(backend);
  expect(DEVICE_CLASSES).toContain(deviceClass);
  // A CPU worker must never take GPU-sized work; a GPU worker may also drain CPU queues.
  const gpuQueues = queues.filter((queue) => queue.endsWith('-gpu'));
  const expected = deviceClass === 'gpu' ? { backend: 'tensorflow-gpu' } : { gpuQueues: [] };
  const actual = deviceClass === 'gpu' ? { backend } : { gpuQueues };
  expect({ where, ...actual }).toEqual({ where, ...expected });
  if (deviceClass === 'cpu') expect([where, backend]).not.toEqual([where, 'tensorflow-gpu']);
  return queues;
}

function startCommandOf(command: string[]): string[] {
  return command.slice(0, TINI.length).join(' ') === TINI.join(' ') ? command.slice(TINI.length) : command;
}

// ---------------------------------------------------------------------------------------------------
// docker-compose.yml

const COMPOSE_FILE = 'docker-compose.yml';
const compose = mapping(loadYaml(COMPOSE_FILE)[0], COMPOSE_FILE);
const composeServices = mapping(dig(compose, COMPOSE_FILE, 'services'), `${COMPOSE_FILE} services`);

function composeService(name: string): Mapping {
  return mapping(composeServices[name], `${COMPOSE_FILE} services.${name}`);
}

/** A service's environment as a map, whichever of the two compose forms it uses. */
function composeEnv(name: string): Record<string, string> {
  const environment = composeService(name).environment;
  if (environment === undefined) return {};
  const entries: [string, string][] = Array.isArray(environment)
    ? environment.map((item) => {
        const [key, ...value] = text(item, `${COMPOSE_FILE} services.${name}.environment`).split('=');
        return [key, value.join('=')];
      })
    : Object.entries(mapping(environment, `${COMPOSE_FILE} services.${name}.environment`)).map(
        ([key, value]) => [key, String(value)],
      );
  return Object.fromEntries(entries);
}

const builtServices = Object.keys(composeServices).filter((name) => composeService(name).build !== undefined);
const composeWorkers = Object.keys(composeServices).filter(
  (name) => composeEnv(name).DINOQ_WORKER_QUEUES !== undefined,
);

describe('docker-compose.yml', () => {
  test('has the redis, minio, minio-init, api, worker-cpu and worker-gpu services', () => {
    expect(Object.keys(composeServices).sort()).toEqual(
      ['api', 'minio', 'minio-init', 'redis', 'worker-cpu', 'worker-gpu'].sort(),
    );
    expect([...builtServices].sort()).toEqual(['api', 'worker-cpu', 'worker-gpu']);
    expect([...composeWorkers].sort()).toEqual(['worker-cpu', 'worker-gpu']);
  });

  test('redis 7 persists its queues, never evicts, and has a healthcheck and a volume', () => {
    const redis = composeService('redis');
    expect(redis.image).toBe('redis:7');
    const command = list(redis.command, 'redis.command').map(String).join(' ');
    expect(command).toContain('--appendonly yes');
    expect(command).toContain('--maxmemory-policy noeviction');
    expect(list(dig(redis, 'redis', 'healthcheck', 'test'), 'redis.healthcheck.test')).toContain('ping');
    const volumes = list(redis.volumes, 'redis.volumes').map(String);
    expect(volumes.some((volume) => volume.endsWith(':/data'))).toBe(true);
    const namedVolume = volumes[0].split(':')[0];
    expect(Object.keys(mapping(compose.volumes, 'volumes'))).toContain(namedVolume);
  });

  test('minio-init creates the dinoq bucket with minio/mc once MinIO is healthy', () => {
    const init = composeService('minio-init');
    expect(text(init.image, 'minio-init.image')).toMatch(/^minio\/mc(:|$)/);
    expect(dig(init, 'minio-init', 'depends_on', 'minio', 'condition')).toBe('service_healthy');
    const script = list(init.command, 'minio-init.command').map(String).join(' ');
    expect(script).toMatch(/mc mb --ignore-existing "dinoq\/\$\$S3_BUCKET"/);
    expect(composeEnv('minio-init').S3_BUCKET).toBe('dinoq');
    expect(text(composeService('minio').image, 'minio.image')).toMatch(/^minio\/minio(:|$)/);
    expect(dig(composeService('minio'), 'minio', 'healthcheck', 'test')).toBeDefined();
  });

  test('the API listens on 3000 and every dinoq process waits for healthy Redis and MinIO', () => {
    expect(list(composeService('api').ports, 'api.ports')).toContain('3000:3000');
    expect(composeEnv('api').PORT).toBe('3000');
    for (const name of builtServices) {
      const dependsOn = dig(composeService(name), name, 'depends_on');
      expect([name, dig(dependsOn, name, 'redis', 'condition')]).toEqual([name, 'service_healthy']);
      expect([name, dig(dependsOn, name, 'minio', 'condition')]).toEqual([name, 'service_healthy']);
    }
  });

  test('the GPU worker sits behind the gpu profile and reserves an NVIDIA GPU', () => {
    const gpu = composeService('worker-gpu');
    expect(gpu.profiles).toEqual(['gpu']);
    for (const name of Object.keys(composeServices).filter((service) => service !== 'worker-gpu')) {
      expect([name, composeService(name).profiles]).toEqual([name, undefined]);
    }
    const devices = list(dig(gpu, 'worker-gpu', 'deploy', 'resources', 'reservations', 'devices'), 'devices');
    expect(devices).toContainEqual(
      expect.objectContaining({ driver: 'nvidia', count: 1, capabilities: expect.arrayContaining(['gpu']) }),
    );
  });

  test('every build context and dockerfile exists', () => {
    const expectedDockerfiles: Record<string, string> = {
      api: 'infra/docker/api.Dockerfile',
      'worker-cpu': 'infra/docker/worker-cpu.Dockerfile',
      'worker-gpu': 'infra/docker/worker-gpu.Dockerfile',
    };
    for (const name of builtServices) {
      const build = mapping(composeService(name).build, `${name}.build`);
      const context = text(build.context, `${name}.build.context`);
      const dockerfile = path.join(context, text(build.dockerfile, `${name}.build.dockerfile`));
      expect([name, existsInRepo(context), existsInRepo(dockerfile)]).toEqual([name, true, true]);
      expect([name, path.normalize(dockerfile)]).toEqual([name, expectedDockerfiles[name]]);
    }
  });

  test('the dinoq services share the x-dinoq-env block', () => {
    const shared = mapping(compose['x-dinoq-env'], 'x-dinoq-env');
    expect(Object.keys(shared).sort()).toEqual(
      [
        'REDIS_URL',
        'S3_ACCESS_KEY_ID',
        'S3_BUCKET',
        'S3_ENDPOINT',
        'S3_REGION',
        'S3_SECRET_ACCESS_KEY',
      ].sort(),
    );
    expect(readRepoFile(COMPOSE_FILE)).toMatch(/^x-dinoq-env: &dinoq-env$/m);
    for (const name of [...builtServices, 'minio-init']) {
      expect([name, composeEnv(name)]).toEqual([name, expect.objectContaining(shared)]);
    }
  });

  test('sets and interpolates only documented environment variables, and no NODE_OPTIONS', () => {
    for (const name of Object.keys(composeServices)) {
      const allowed = new Set([...DOCUMENTED_ENV, ...(THIRD_PARTY_ENV[name] ?? [])]);
      const unknown = Object.keys(composeEnv(name)).filter((key) => !allowed.has(key));
      expect([name, unknown]).toEqual([name, []]);
      expect([name, composeEnv(name).NODE_OPTIONS]).toEqual([name, undefined]);
    }
    const source = readRepoFile(COMPOSE_FILE);
    const fromHost = [...source.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((match) => match[1]);
    const inContainer = [...source.matchAll(/\$\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((match) => match[1]);
    expect(fromHost.length).toBeGreaterThan(0);
    expect([...fromHost, ...inContainer].filter((name) => !DOCUMENTED_ENV.has(name))).toEqual([]);
  });

  test('the workers consume every queue between them, with matching backends and devices', () => {
    const consumed = composeWorkers.flatMap((name) =>
      checkWorkerEnv(composeEnv(name), `${COMPOSE_FILE} ${name}`),
    );
    expect([...new Set(consumed)].sort()).toEqual([...QUEUES].sort());
  });
});

// ---------------------------------------------------------------------------------------------------
// Dockerfiles

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped, as the Docker parser reads them. */
function parseDockerfile(relativePath: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const line of readRepoFile(relativePath).split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (trimmed.endsWith('\\')) {
      pending += `${trimmed.slice(0, -1)} `;
      continue;
    }
    const whole = pending + trimmed;
    pending = '';
    const [keyword, ...rest] = whole.split(/\s+/);
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' ') });
  }
  expect([relativePath, pending]).toEqual([relativePath, '']);
  return instructions;
}

/** Stages, with `${ARG}` in FROM resolved from the ARG defaults declared before the first FROM. */
function dockerStages(relativePath: string): Stage[] {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of parseDockerfile(relativePath)) {
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = instruction.args.split(/\s+/);
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_whole, arg: string) => {
        const value = globalArgs.get(arg);
        if (value === undefined)
          throw new Error(`${relativePath}: FROM uses ARG ${arg}, which has no default`);
        return value;
      });
      stages.push({ image: resolved, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0) {
      expect([relativePath, instruction.keyword]).toEqual([relativePath, 'ARG']);
      const [arg, value] = instruction.args.split('=');
      if (value !== undefined) globalArgs.set(arg, value);
    } else {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return stages;
}

function argsOf(stage: Stage, keyword: string): string[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword).map((i) => i.args);
}

function jsonArray(args: string, where: string): string[] {
  const parsed: unknown = JSON.parse(args);
  return list(parsed, where).map((item) => text(item, where));
}

/** Names set by ENV instructions (both `ENV K=V ...` and the legacy `ENV K V`). */
function envNames(stage: Stage): string[] {
  return argsOf(stage, 'ENV').flatMap((args) =>
    args.includes('=') ? [...args.matchAll(/(\w+)=/g)].map((match) => match[1]) : [args.split(/\s+/)[0]],
  );
}

function envValue(stage: Stage, name: string): string | undefined {
  for (const args of argsOf(stage, 'ENV')) {
    const match = new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(args);
    if (match) return match[1];
  }
  return undefined;
}

/** The repository paths a COPY/ADD source pattern names (`*` within one path segment). */
function matchRepoPaths(source: string): string[] {
  const directory = path.dirname(source);
  const pattern = path.basename(source);
  if (!pattern.includes('*')) return existsInRepo(source) ? [source] : [];
  if (!existsInRepo(directory)) return [];
  const regex = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  return fs.readdirSync(path.join(ROOT, directory)).filter((entry) => regex.test(entry));
}

/** Sources of COPY instructions that read the build context (not `--from` another stage). */
function contextSources(stage: Stage): string[] {
  return argsOf(stage, 'COPY').flatMap((args) => {
    const tokens = args.split(/\s+/);
    if (tokens.some((token) => token.startsWith('--from='))) return [];
    const operands = tokens.filter((token) => !token.startsWith('--'));
    return operands.slice(0, -1);
  });
}

const DOCKERFILES = {
  api: { file: 'infra/docker/api.Dockerfile', start: START_COMMANDS.api },
  'worker-cpu': { file: 'infra/docker/worker-cpu.Dockerfile', start: START_COMMANDS.worker },
  'worker-gpu': { file: 'infra/docker/worker-gpu.Dockerfile', start: START_COMMANDS.worker },
};
const NODE_IMAGE = 'node:20-bookworm-slim';
const CUDA_IMAGE = 'nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04';
const rootPackage = mapping(JSON.parse(readRepoFile('package.json')), 'package.json');
const dinoPackage = mapping(JSON.parse(readRepoFile('libs/dino/package.json')), 'libs/dino/package.json');
const TFJS_CORE_VERSION = text(
  dig(dinoPackage, 'libs/dino/package.json', 'dependencies', '@tensorflow/tfjs-core'),
  'tfjs-core version',
);

describe.each(Object.entries(DOCKERFILES))('%s Dockerfile', (image, { file, start }) => {
  const stages = dockerStages(file);
  const final = stages[stages.length - 1];
  const runs = stages.flatMap((stage) => argsOf(stage, 'RUN'));

  test('is multi-stage: builds on Node 20 and copies only the result into the final stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0].image).toBe(NODE_IMAGE);
    expect(final.image).toBe(image === 'worker-gpu' ? CUDA_IMAGE : NODE_IMAGE);
    expect(argsOf(final, 'COPY').some((args) => args.includes(`--from=${stages[0].name}`))).toBe(true);
    expect(runs.some((args) => /\bnpm ci\b/.test(args))).toBe(true);
    expect(runs.some((args) => args.includes('npm run build'))).toBe(true);
    expect(runs.some((args) => args.includes('npm prune --omit=dev'))).toBe(true);
    expect(text(dig(rootPackage, 'package.json', 'scripts', 'build'), 'build script')).toBeTruthy();
  });

  test('copies package.json, package-lock.json, tsconfig*.json, apps/ and libs/, all of which exist', () => {
    const sources = stages.flatMap(contextSources);
    expect([...sources].sort()).toEqual(
      ['apps/', 'libs/', 'package-lock.json', 'package.json', 'tsconfig*.json'].sort(),
    );
    for (const source of sources) {
      expect([source, matchRepoPaths(source.replace(/\/$/, '')).length > 0]).toEqual([source, true]);
    }
  });

  test('runs the documented start command as a non-root user under tini', () => {
    const cmd = argsOf(final, 'CMD');
    expect(cmd).toHaveLength(1);
    expect(jsonArray(cmd[0], `${file} CMD`)).toEqual(start);
    expect(start[1]).toMatch(/^apps\/[a-z-]+\/dist\/main\.js$/);
    expect(argsOf(final, 'ENTRYPOINT').map((args) => jsonArray(args, `${file} ENTRYPOINT`))).toEqual([TINI]);
    const users = argsOf(final, 'USER');
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0', '0:0']).not.toContain(users[users.length - 1]);
  });

  test('sets only documented or image-level environment variables, and no NODE_OPTIONS', () => {
    const names = stages.flatMap(envNames);
    expect(names.filter((name) => !DOCUMENTED_ENV.has(name) && !IMAGE_ENV.has(name))).toEqual([]);
    expect(names).not.toContain('NODE_OPTIONS');
  });

  if (image === 'api') {
    test('exposes 3000 and checks /health', () => {
      expect(argsOf(final, 'EXPOSE')).toEqual(['3000']);
      expect(envValue(final, 'PORT')).toBe('3000');
      const healthchecks = argsOf(final, 'HEALTHCHECK');
      expect(healthchecks).toHaveLength(1);
      expect(healthchecks[0]).toContain('/health');
    });
  } else {
    const nativePackage = image === 'worker-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
    const backend = image === 'worker-gpu' ? 'tensorflow-gpu' : 'tensorflow';

    test(`installs ${nativePackage} at build time, matching tfjs-core, and proves it loads`, () => {
      const installs = runs.filter((args) => args.includes(`npm install`) && args.includes(nativePackage));
      expect(installs).toHaveLength(1);
      expect(installs[0]).toContain(`${nativePackage}@${TFJS_CORE_VERSION}`);
      expect(installs[0]).toContain(`npm rebuild --foreground-scripts ${nativePackage}`);
      expect(argsOf(final, 'RUN')).toContainEqual(`node -e "require('${nativePackage}')"`);
    });

    test(`defaults to the ${backend} backend and leaves the queues to the worker`, () => {
      const deviceClass = image === 'worker-gpu' ? 'gpu' : 'cpu';
      expect(envValue(final, 'DINOQ_BACKEND')).toBe(backend);
      expect(envValue(final, 'DINOQ_DEVICE_CLASS')).toBe(deviceClass);
      expect(composeEnv(image).DINOQ_BACKEND).toBe(backend);
      expect(composeEnv(image).DINOQ_DEVICE_CLASS).toBe(deviceClass);
      expect(envNames(final)).not.toContain('DINOQ_WORKER_QUEUES');
    });
  }
});

describe('.dockerignore', () => {
  const patterns = readRepoFile('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  /** A .dockerignore pattern as a regular expression over context-relative paths. */
  const toRegex = (pattern: string): RegExp => {
    let source = '';
    for (let i = 0; i < pattern.length; i += 1) {
      if (pattern.startsWith('**/', i)) {
        source += '(?:.*/)?';
        i += 2;
      } else if (pattern[i] === '*') {
        source += '[^/]*';
      } else if (pattern[i] === '?') {
        source += '[^/]';
      } else {
        source += pattern[i].replace(/[.+^${}()|[\]\\]/, '\\$&');
      }
    }
    return new RegExp(`^${source}$`);
  };

  test('keeps host node_modules and build outputs out of the context', () => {
    for (const ignored of ['node_modules', 'libs/dino/node_modules', 'libs/dino/dist', 'apps/api/dist']) {
      expect([ignored, patterns.some((pattern) => toRegex(pattern).test(ignored))]).toEqual([ignored, true]);
    }
  });

  test('does not drop anything the Dockerfiles copy', () => {
    const copied = [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.base.json',
      'apps',
      'libs',
    ];
    for (const source of copied) {
      expect([source, patterns.filter((pattern) => toRegex(pattern).test(source))]).toEqual([source, []]);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Kubernetes manifests

const K8S_DIR = 'infra/k8s';
const SECRET_TEMPLATE = 'secret.template.yaml';
const k8sFiles = fs
  .readdirSync(path.join(ROOT, K8S_DIR))
  .filter((file) => /\.ya?ml$/.test(file))
  .sort();

interface K8sDocument {
  /** File and position, for messages. */
  where: string;
  file: string;
  /** Empty when missing; the first Kubernetes test reports it. */
  apiVersion: string;
  kind: string;
  name: string;
  body: Mapping;
}

function optionalText(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

const k8sDocuments: K8sDocument[] = k8sFiles.flatMap((file) =>
  loadYaml(`${K8S_DIR}/${file}`)
    .filter((document) => document !== null)
    .map((document, index) => {
      const where = `${K8S_DIR}/${file} document ${index}`;
      const body = mapping(document, where);
      const metadata = isMapping(body.metadata) ? body.metadata : {};
      return {
        where,
        file,
        apiVersion: optionalText(body.apiVersion),
        kind: optionalText(body.kind),
        name: optionalText(metadata.name),
        body,
      };
    }),
);

function ofKind(kind: string): K8sDocument[] {
  return k8sDocuments.filter((document) => document.kind === kind);
}

function theOne(kind: string, name: string): K8sDocument {
  const found = ofKind(kind).filter((document) => document.name === name);
  if (found.length !== 1)
    throw new Error(`expected one ${kind} ${name} in ${K8S_DIR}, found ${found.length}`);
  return found[0];
}

function podSpec(deployment: K8sDocument): Mapping {
  return mapping(dig(deployment.body, deployment.name, 'spec', 'template', 'spec'), `${deployment.name} pod`);
}

function containers(deployment: K8sDocument): Mapping[] {
  return list(podSpec(deployment).containers, `${deployment.name} containers`).map((container, index) =>
    mapping(container, `${deployment.name} containers[${index}]`),
  );
}

function podLabels(deployment: K8sDocument): Mapping {
  return mapping(dig(deployment.body, deployment.name, 'spec', 'template', 'metadata', 'labels'), 'labels');
}

function selects(selector: Mapping, labels: Mapping): boolean {
  return (
    Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([key, value]) => labels[key] === value)
  );
}

/** Literal `env` values of a container (references to ConfigMaps and Secrets are left out). */
function literalEnv(container: Mapping, where: string): Record<string, string> {
  const entries = list(container.env ?? [], `${where} env`).map((item) => mapping(item, `${where} env`));
  return Object.fromEntries(
    entries
      .filter((entry) => entry.value !== undefined)
      .map((entry) => [String(entry.name), String(entry.value)]),
  );
}

function secretTemplateKeys(): Mapping {
  return mapping(dig(theOne('Secret', 'dinoq-secrets').body, SECRET_TEMPLATE, 'stringData'), 'stringData');
}

const deployments = ofKind('Deployment');
const configMap = mapping(dig(theOne('ConfigMap', 'dinoq-config').body, 'dinoq-config', 'data'), 'data');

describe('Kubernetes manifests', () => {
  test('every document has apiVersion, kind and metadata.name, in the dinoq namespace', () => {
    expect(k8sDocuments.length).toBeGreaterThan(0);
    for (const document of k8sDocuments) {
      const identity = [document.apiVersion, document.kind, document.name];
      expect([document.where, identity.every((field) => field !== '')]).toEqual([document.where, true]);
      if (document.kind === 'Namespace' || document.kind === 'Kustomization') continue;
      const namespace = dig(document.body, document.file, 'metadata', 'namespace');
      expect([document.file, document.kind, document.name, namespace]).toEqual([
        document.file,
        document.kind,
        document.name,
        K8S_NAMESPACE,
      ]);
    }
    expect(theOne('Namespace', K8S_NAMESPACE).kind).toBe('Namespace');
  });

  test('kustomization.yaml lists every manifest but the secret template, and each listed file exists', () => {
    const kustomization = theOne('Kustomization', 'dinoq').body;
    expect(kustomization.namespace).toBe(K8S_NAMESPACE);
    const resources = list(kustomization.resources, 'resources').map((item) => text(item, 'resources[]'));
    for (const resource of resources) {
      expect([resource, existsInRepo(path.join(K8S_DIR, resource))]).toEqual([resource, true]);
    }
    const expected = k8sFiles.filter((file) => file !== 'kustomization.yaml' && file !== SECRET_TEMPLATE);
    expect([...resources].sort()).toEqual(expected);
    const imageNames = list(kustomization.images, 'images').map((item) => dig(item, 'images[]', 'name'));
    const deploymentImages = deployments.flatMap((deployment) =>
      containers(deployment).map((container) => text(container.image, deployment.name).split(':')[0]),
    );
    expect([...imageNames].sort()).toEqual([...deploymentImages].sort());
  });

  test('the Deployments select their own pods and run the documented start commands', () => {
    const expected: Record<string, string[]> = {
      'dinoq-api': START_COMMANDS.api,
      'dinoq-worker-cpu': START_COMMANDS.worker,
      'dinoq-worker-gpu': START_COMMANDS.worker,
    };
    expect(deployments.map((deployment) => deployment.name).sort()).toEqual(Object.keys(expected).sort());
    for (const deployment of deployments) {
      const selector = mapping(
        dig(deployment.body, deployment.name, 'spec', 'selector', 'matchLabels'),
        'sel',
      );
      expect([deployment.name, selects(selector, podLabels(deployment))]).toEqual([deployment.name, true]);
      const [container, ...others] = containers(deployment);
      expect(others).toEqual([]);
      text(container.image, `${deployment.name} image`);
      const command = list(container.command, `${deployment.name} command`).map(String);
      expect([deployment.name, startCommandOf(command)]).toEqual([
        deployment.name,
        expected[deployment.name],
      ]);
    }
  });

  test('containers read only documented variables, from ConfigMaps and Secrets that exist', () => {
    const secretKeys = secretTemplateKeys();
    expect(Object.keys(configMap).filter((key) => !DOCUMENTED_ENV.has(key))).toEqual([]);
    expect(Object.keys(secretKeys).filter((key) => !DOCUMENTED_ENV.has(key))).toEqual([]);
    for (const deployment of deployments) {
      for (const container of containers(deployment)) {
        const where = `${deployment.name}/${String(container.name)}`;
        const env = list(container.env ?? [], `${where} env`).map((item) => mapping(item, `${where} env`));
        const names = env.map((entry) => text(entry.name, `${where} env[].name`));
        for (const entry of env.filter((item) => item.valueFrom !== undefined)) {
          const secretRef = mapping(dig(entry, where, 'valueFrom', 'secretKeyRef'), `${where} secretKeyRef`);
          expect([where, secretRef.name, String(secretRef.key) in secretKeys]).toEqual([
            where,
            'dinoq-secrets',
            true,
          ]);
        }
        for (const source of list(container.envFrom ?? [], `${where} envFrom`)) {
          const configMapName = dig(source, where, 'configMapRef', 'name');
          expect([where, configMapName]).toEqual([where, 'dinoq-config']);
          names.push(...Object.keys(configMap));
        }
        expect([where, names.filter((name) => !DOCUMENTED_ENV.has(name))]).toEqual([where, []]);
        expect(names).not.toContain('NODE_OPTIONS');
        for (const required of ['REDIS_URL', 'S3_ENDPOINT', 'S3_BUCKET', 'S3_REGION', 'S3_ACCESS_KEY_ID']) {
          expect([where, names.includes(required)]).toEqual([where, true]);
        }
      }
    }
  });

  test('the secret template holds placeholders only', () => {
    const secret = theOne('Secret', 'dinoq-secrets');
    expect(secret.file).toBe(SECRET_TEMPLATE);
    expect(secret.body.data).toBeUndefined();
    for (const [key, value] of Object.entries(secretTemplateKeys())) {
      expect([key, value]).toEqual([key, 'REPLACE_ME']);
    }
  });

  test('the API is probed on /health and /health/live, has resources, a Service and a PodDisruptionBudget', () => {
    const api = theOne('Deployment', 'dinoq-api');
    const [container] = containers(api);
    const ports = list(container.ports, 'api ports').map((port) => mapping(port, 'api port'));
    const portNumber = (port: unknown): unknown =>
      typeof port === 'string' ? ports.find((candidate) => candidate.name === port)?.containerPort : port;
    expect(ports.map((port) => port.containerPort)).toEqual([3000]);
    expect(literalEnv(container, 'api').PORT).toBe('3000');
    // Readiness follows Redis and S3 (/health); liveness only asks whether the process answers.
    const expectedPaths = { readinessProbe: '/health', livenessProbe: '/health/live' };
    for (const [probe, path] of Object.entries(expectedPaths)) {
      const httpGet = mapping(dig(container, 'api', probe, 'httpGet'), `api ${probe}`);
      expect([probe, httpGet.path, portNumber(httpGet.port)]).toEqual([probe, path, 3000]);
    }
    for (const key of ['requests', 'limits']) {
      expect(Object.keys(mapping(dig(container, 'api', 'resources', key), key))).toContain('memory');
    }
    const service = theOne('Service', 'dinoq-api').body;
    expect(selects(mapping(dig(service, 'service', 'spec', 'selector'), 'selector'), podLabels(api))).toBe(
      true,
    );
    const [servicePort] = list(dig(service, 'service', 'spec', 'ports'), 'service ports');
    expect(portNumber(dig(servicePort, 'service port', 'targetPort'))).toBe(3000);
    const budget = theOne('PodDisruptionBudget', 'dinoq-api').body;
    const budgetSelector = mapping(dig(budget, 'pdb', 'spec', 'selector', 'matchLabels'), 'pdb selector');
    expect(selects(budgetSelector, podLabels(api))).toBe(true);
    expect(dig(budget, 'pdb', 'spec', 'minAvailable')).toBe(1);
  });

  test('the GPU Deployment requests nvidia.com/gpu on GPU nodes and gives shards time to finish', () => {
    const gpu = theOne('Deployment', 'dinoq-worker-gpu');
    const spec = podSpec(gpu);
    const [container] = containers(gpu);
    expect(dig(container, 'gpu', 'resources', 'limits', 'nvidia.com/gpu')).toBe(1);
    const requests = mapping(dig(container, 'gpu', 'resources', 'requests'), 'requests');
    expect(requests['nvidia.com/gpu'] ?? 1).toBe(1);
    expect(Object.keys(mapping(spec.nodeSelector, 'nodeSelector')).length).toBeGreaterThan(0);
    expect(list(spec.tolerations, 'tolerations')).toContainEqual(
      expect.objectContaining({ key: 'nvidia.com/gpu', effect: 'NoSchedule' }),
    );
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(900);
    expect(dig(gpu.body, 'gpu', 'spec', 'strategy', 'rollingUpdate', 'maxSurge')).toBe(0);
    for (const other of deployments.filter((deployment) => deployment !== gpu)) {
      const limits = mapping(dig(containers(other)[0], other.name, 'resources', 'limits'), 'limits');
      expect([other.name, limits['nvidia.com/gpu']]).toEqual([other.name, undefined]);
    }
  });

  test('worker Deployments agree with the compose file on queues, backend and device', () => {
    for (const deployment of deployments.filter((candidate) => candidate.name.startsWith('dinoq-worker-'))) {
      const env = literalEnv(containers(deployment)[0], deployment.name);
      const queues = checkWorkerEnv(env, deployment.name);
      const composeName = deployment.name.replace(/^dinoq-/, '');
      const composeWorker = composeEnv(composeName);
      expect([deployment.name, queues, env.DINOQ_BACKEND, env.DINOQ_DEVICE_CLASS]).toEqual([
        deployment.name,
        splitList(composeWorker.DINOQ_WORKER_QUEUES),
        composeWorker.DINOQ_BACKEND,
        composeWorker.DINOQ_DEVICE_CLASS,
      ]);
      expect([deployment.name, podSpec(deployment).terminationGracePeriodSeconds]).toEqual([
        deployment.name,
        expect.any(Number),
      ]);
      expect([
        deployment.name,
        mapping(dig(deployment.body, deployment.name, 'spec'), 'spec').replicas,
      ]).toEqual([deployment.name, undefined]);
    }
  });

  test('each worker has a KEDA ScaledObject watching the wait and active lists of exactly its queues', () => {
    const redisUrl = new URL(text(configMap.REDIS_URL, 'REDIS_URL'));
    const redisAddress = `${redisUrl.hostname}:${redisUrl.port || '6379'}`;
    const scaled = ofKind('ScaledObject');
    const workers = deployments.filter((deployment) => deployment.name.startsWith('dinoq-worker-'));
    expect(scaled.map((so) => dig(so.body, so.name, 'spec', 'scaleTargetRef', 'name')).sort()).toEqual(
      workers.map((worker) => worker.name).sort(),
    );
    for (const so of scaled) {
      const spec = mapping(dig(so.body, so.name, 'spec'), `${so.name} spec`);
      const target = theOne('Deployment', text(dig(spec, so.name, 'scaleTargetRef', 'name'), 'target'));
      expect(mapping(spec.scaleTargetRef, `${so.name} scaleTargetRef`).kind ?? 'Deployment').toBe(
        'Deployment',
      );
      const triggers = list(spec.triggers, `${so.name} triggers`).map((trigger) => mapping(trigger, so.name));
      const watched = triggers.map((trigger) => {
        expect([so.name, trigger.type]).toEqual([so.name, 'redis']);
        const metadata = mapping(trigger.metadata, `${so.name} trigger metadata`);
        expect([so.name, metadata.address]).toEqual([so.name, redisAddress]);
        expect(Number(metadata.listLength)).toBeGreaterThan(0);
        const listName = text(metadata.listName, `${so.name} listName`);
        const match = new RegExp(`^${QUEUE_PREFIX}:([a-z-]+):(wait|active)$`).exec(listName);
        expect([so.name, listName, match !== null && QUEUES.includes(match[1])]).toEqual([
          so.name,
          listName,
          true,
        ]);
        return {
          name: text(trigger.name, `${so.name} trigger name`),
          list: listName,
          queue: match?.[1] ?? '',
        };
      });
      const consumed = splitList(literalEnv(containers(target)[0], target.name).DINOQ_WORKER_QUEUES ?? '');
      const expectedLists = consumed.flatMap((queue) =>
        ['wait', 'active'].map((s) => `${QUEUE_PREFIX}:${queue}:${s}`),
      );
      expect(watched.map((trigger) => trigger.list).sort()).toEqual(expectedLists.sort());
      // The formula must add up every trigger and nothing else.
      const formula = text(
        dig(spec, so.name, 'advanced', 'scalingModifiers', 'formula'),
        `${so.name} formula`,
      );
      const terms = formula.split('+').map((term) => term.trim());
      expect(terms.sort()).toEqual(watched.map((trigger) => trigger.name).sort());
      expect(Number(dig(spec, so.name, 'maxReplicaCount'))).toBeGreaterThan(0);
    }
    expect(dig(theOne('ScaledObject', 'dinoq-worker-gpu').body, 'gpu', 'spec', 'minReplicaCount')).toBe(0);
  });
});
