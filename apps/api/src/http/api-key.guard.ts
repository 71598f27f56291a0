import { Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { ApiKeyVerifier } from './api-key-verifier';
import { IS_PUBLIC } from './public.decorator';

/** Global guard: every route needs a valid bearer key (or session cookie) unless it is marked @Public(). */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: ApiKeyVerifier,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    const http = context.switchToHttp();
    const outcome = this.verifier.verifyRequest(http.getRequest<Request>());
    if (outcome.ok) return true;
    http.getResponse<Response>().setHeader('WWW-Authenticate', 'Bearer realm="dinoq"');
    throw new UnauthorizedException(outcome.reason);
  }
}
