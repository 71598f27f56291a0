import { RequestMethod, type Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { MetadataScanner, Reflector } from '@nestjs/core';
import { IS_PUBLIC } from './public.decorator';

export interface PublicRoute {
  /** Express router method name: `get`, `post`, ..., or `all`. */
  method: string;
  path: string;
}

function asList(path: unknown): string[] {
  const paths = Array.isArray(path) ? path : [path ?? ''];
  return paths.map((part) => String(part).replace(/^\/+|\/+$/g, ''));
}

function joinPath(controllerPath: string, handlerPath: string): string {
  return `/${[controllerPath, handlerPath].filter((part) => part.length > 0).join('/')}`;
}

/**
 * The routes marked @Public(), read from the same decorator metadata that the ApiKeyGuard reads,
 * with the paths Nest registers them under (this API uses no global prefix and no versioning).
 */
export function publicRoutes(controllers: readonly Type[]): PublicRoute[] {
  const reflector = new Reflector();
  const scanner = new MetadataScanner();
  const routes: PublicRoute[] = [];
  for (const controller of controllers) {
    const prototype = controller.prototype as Record<string, unknown>;
    for (const name of scanner.getAllMethodNames(prototype)) {
      const handler = prototype[name] as (...args: unknown[]) => unknown;
      const requestMethod = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (requestMethod === undefined) continue;
      if (!reflector.getAllAndOverride<boolean>(IS_PUBLIC, [handler, controller])) continue;
      const method = RequestMethod[requestMethod].toLowerCase();
      for (const controllerPath of asList(Reflect.getMetadata(PATH_METADATA, controller)))
        for (const handlerPath of asList(Reflect.getMetadata(PATH_METADATA, handler)))
          routes.push({ method, path: joinPath(controllerPath, handlerPath) });
    }
  }
  return routes;
}
