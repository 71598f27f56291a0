/**
 * What the deployment files must agree with, read from the application's source: the environment
 * variables each process reads and the API routes a probe may use. Read with the TypeScript parser,
 * so a setting added to or removed from the code changes what the infra checks expect.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

export const ROOT = path.resolve(__dirname, '..', '..');

const ENV_NAME = /^[A-Z][A-Z0-9_]*$/;

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
}

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => path.join(dir, file));
}

/** `./x` and `@dinoq/<lib>` imports, resolved to source files; packages are not followed. */
function localImports(file: string, source: ts.SourceFile): string[] {
  const resolved: string[] = [];
  source.forEachChild((node) => {
    const specifier =
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
        ? node.moduleSpecifier.text
        : undefined;
    if (specifier === undefined) return;
    const lib = /^@dinoq\/([a-z-]+)$/.exec(specifier);
    const base = lib
      ? path.join(ROOT, 'libs', lib[1], 'src', 'index')
      : specifier.startsWith('.')
        ? path.resolve(path.dirname(file), specifier)
        : undefined;
    if (base === undefined) return;
    const found = [`${base}.ts`, path.join(base, 'index.ts')].find((candidate) => fs.existsSync(candidate));
    if (found) resolved.push(found);
  });
  return resolved;
}

function isEnvObject(node: ts.Node): boolean {
  const text = node.getText();
  return text === 'env' || text === 'process.env' || text.endsWith('.env');
}

/**
 * Names a file reads from an environment object: `env.NAME`, `env['NAME']`, `f(env, 'NAME')` and the
 * keys of a zod `z.object({...})` schema that parses the environment.
 */
function envNamesIn(source: ts.SourceFile): string[] {
  const names: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && isEnvObject(node.expression)) {
      names.push(node.name.text);
    } else if (
      ts.isElementAccessExpression(node) &&
      isEnvObject(node.expression) &&
      ts.isStringLiteral(node.argumentExpression)
    ) {
      names.push(node.argumentExpression.text);
    } else if (ts.isCallExpression(node)) {
      const args = node.arguments;
      if (args.some(isEnvObject)) {
        names.push(...args.filter(ts.isStringLiteral).map((arg) => arg.text));
      }
      if (node.expression.getText() === 'z.object' && args[0] && ts.isObjectLiteralExpression(args[0])) {
        names.push(...args[0].properties.map((property) => property.name?.getText() ?? ''));
      }
    }
    node.forEachChild(visit);
  };
  visit(source);
  return names.filter((name) => ENV_NAME.test(name));
}

/**
 * Every environment variable a deployed app reads: its own sources (entry points and the files it
 * starts as child processes or threads) and the libraries they import, followed transitively.
 */
export function envReadBy(app: 'api' | 'worker'): Set<string> {
  const pending = sourceFiles(path.join(ROOT, 'apps', app, 'src'));
  const seen = new Set<string>();
  const names = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = parse(file);
    envNamesIn(source).forEach((name) => names.add(name));
    pending.push(...localImports(file, source));
  }
  return names;
}

function decorator(node: ts.HasDecorators, name: string): ts.CallExpression | undefined {
  return (ts.getDecorators(node) ?? [])
    .map((d) => d.expression)
    .find((e): e is ts.CallExpression => ts.isCallExpression(e) && e.expression.getText() === name);
}

function pathArgument(call: ts.CallExpression): string {
  const [arg] = call.arguments;
  return arg && ts.isStringLiteral(arg) ? arg.text.replace(/^\/+|\/+$/g, '') : '';
}

export interface ApiRoute {
  /** As Nest registers it (no global prefix), e.g. `/metrics/queues/:queue/demand`. */
  path: string;
  /** Marked @Public(): answers without an API key, as a kubelet probe needs. */
  isPublic: boolean;
}

/** The API's GET routes, from the controllers' @Controller, @Get and @Public decorators. */
export function apiGetRoutes(): ApiRoute[] {
  const routes: ApiRoute[] = [];
  for (const file of sourceFiles(path.join(ROOT, 'apps', 'api', 'src')).filter((f) =>
    f.endsWith('.controller.ts'),
  )) {
    parse(file).forEachChild((node) => {
      if (!ts.isClassDeclaration(node)) return;
      const controller = decorator(node, 'Controller');
      if (!controller) return;
      const classPublic = decorator(node, 'Public') !== undefined;
      for (const member of node.members.filter(ts.isMethodDeclaration)) {
        const get = decorator(member, 'Get');
        if (!get) continue;
        const parts = [pathArgument(controller), pathArgument(get)].filter((part) => part !== '');
        routes.push({
          path: `/${parts.join('/')}`,
          isPublic: classPublic || decorator(member, 'Public') !== undefined,
        });
      }
    });
  }
  return routes;
}

/** The route a request path hits, with its `:name` parameters. */
export function matchRoute(
  routes: readonly ApiRoute[],
  requestPath: string,
): { route: ApiRoute; params: Record<string, string> } | undefined {
  for (const route of routes) {
    const names: string[] = [];
    const pattern = route.path.replace(/:([A-Za-z]+)/g, (_whole, name: string) => {
      names.push(name);
      return '([^/]+)';
    });
    const match = new RegExp(`^${pattern}$`).exec(requestPath);
    if (match) return { route, params: Object.fromEntries(names.map((name, i) => [name, match[i + 1]])) };
  }
  return undefined;
}
