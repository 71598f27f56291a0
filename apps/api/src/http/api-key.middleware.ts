import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { ApiKeyVerifier } from './api-key-verifier';
import type { PublicRoute } from './public-routes';

type RouteMethod = (path: string, ...handlers: RequestHandler[]) => unknown;

function sendUnauthorized(res: Response, reason: string): void {
  res.setHeader('WWW-Authenticate', 'Bearer realm="dinoq"');
  res.status(401).json({ statusCode: 401, error: 'Unauthorized', message: reason });
}

/**
 * The API-key check as Express middleware, mounted before the body parsers: an unauthenticated
 * request costs one header check, and its body is never read, inflated or parsed. It also covers
 * what Nest's router does not see (the Swagger UI). Routes marked @Public() pass; they are matched
 * by an Express router, the same matcher Nest routes with, so both agree on which path is which
 * route. The global ApiKeyGuard stays as a second check on Nest's routes.
 */
export function apiKeyMiddleware(verifier: ApiKeyVerifier, routes: readonly PublicRoute[]): RequestHandler[] {
  const publicRequests = new WeakSet<Request>();
  const markPublic = Router();
  const mark: RequestHandler = (req, _res, next) => {
    publicRequests.add(req);
    next();
  };
  for (const route of routes) {
    const register = (markPublic as unknown as Record<string, RouteMethod | undefined>)[route.method];
    if (typeof register !== 'function')
      throw new Error(`public route ${route.path}: Express cannot route method "${route.method}"`);
    register.call(markPublic, route.path, mark);
  }
  const requireKey: RequestHandler = (req, res, next) => {
    if (publicRequests.has(req)) return next();
    const outcome = verifier.verifyRequest(req);
    if (outcome.ok) return next();
    sendUnauthorized(res, outcome.reason);
  };
  return [markPublic, requireKey];
}
