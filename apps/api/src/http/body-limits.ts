import { json, type NextFunction, type Request, type RequestHandler, type Response } from 'express';

export const JSON_BODY_LIMIT = '256kb';
/** Attention uploads carry up to 16 base64 images of 1 MiB each (4/3 larger once encoded). */
export const UPLOAD_BODY_LIMIT = '20mb';

interface BodyParserError extends Error {
  status?: number;
  type?: string;
  limit?: number;
}

/**
 * A JSON body parser whose failures answer in the API's error format: 413 when the body is larger
 * than `limit`, 400 when it is not valid JSON. Bodies parsed by an earlier parser are left alone,
 * which lets a route-specific limit run before the general one.
 */
export function jsonBody(limit: string): RequestHandler {
  const parse = json({ limit });
  return (req: Request, res: Response, next: NextFunction) => {
    parse(req, res, (error?: unknown) => {
      if (!error) return next();
      const failure = error as BodyParserError;
      if (failure.type === 'entity.too.large' || failure.status === 413) {
        res.status(413).json({
          statusCode: 413,
          error: 'Payload Too Large',
          message: `request body exceeds the ${limit} limit of ${req.method} ${req.path}`,
        });
        return;
      }
      const status = failure.status && failure.status >= 400 && failure.status < 500 ? failure.status : 400;
      res.status(status).json({
        statusCode: status,
        error: 'Bad Request',
        message: `request body is not valid JSON: ${failure.message}`,
      });
    });
  };
}
