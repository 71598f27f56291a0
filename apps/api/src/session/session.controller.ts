import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Post,
  Req,
  Res,
  UnauthorizedException,
} from '@nestjs/common';
import { ApiBody, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { ApiKeyVerifier } from '../http/api-key-verifier';
import { openApiSchema } from '../http/openapi';
import { Public } from '../http/public.decorator';
import { SESSION_REQUEST_HEADER, sessionCookie } from '../http/session-token';
import { ZodPipe } from '../http/zod.pipe';

const signInSchema = z
  .object({ apiKey: z.string().min(1).max(1024).describe('one of DINOQ_API_KEYS') })
  .strict();

/**
 * The dashboard's sign-in: the browser trades an API key for an HttpOnly, SameSite=Strict cookie
 * once, so the key is never kept by the page, put in a URL, or sent again; the cookie is accepted
 * wherever the key is (with SESSION_REQUEST_HEADER on requests that change something).
 */
@ApiTags('session')
@Controller('session')
export class SessionController {
  constructor(private readonly verifier: ApiKeyVerifier) {}

  @Post()
  @Public()
  @HttpCode(204)
  @ApiOperation({
    summary:
      `Sign in with an API key: sets the dinoq_session cookie (HttpOnly, SameSite=Strict, 8 h); ` +
      `requests it authenticates that change something must send "${SESSION_REQUEST_HEADER}: 1"`,
  })
  @ApiBody({ schema: openApiSchema(signInSchema) })
  @ApiResponse({ status: 204, description: 'signed in' })
  @ApiResponse({ status: 401, description: 'not an API key of this deployment' })
  signIn(
    @Body(new ZodPipe(signInSchema)) body: z.infer<typeof signInSchema>,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ): void {
    const session = this.verifier.openSession(body.apiKey);
    if (!session) throw new UnauthorizedException('invalid API key');
    response.setHeader('Set-Cookie', sessionCookie(session.token, session.maxAgeSeconds, request.secure));
  }

  @Get()
  @Public()
  @ApiOperation({ summary: 'Whether this request is signed in, and whether this deployment needs a key' })
  state(@Req() request: Request) {
    return {
      authRequired: !this.verifier.disabled,
      authenticated: this.verifier.verifyRequest(request).ok,
    };
  }

  @Delete()
  @Public()
  @HttpCode(204)
  @ApiOperation({ summary: 'Sign out: clears the session cookie' })
  signOut(@Req() request: Request, @Res({ passthrough: true }) response: Response): void {
    response.setHeader('Set-Cookie', sessionCookie('', 0, request.secure));
  }
}
