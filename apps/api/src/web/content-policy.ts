import type { RequestHandler, Response } from 'express';

/**
 * What the dashboard's pages may load: their own scripts and styles only (no CDN at run time;
 * bull-board's page asks for a web font, which this blocks, leaving the system font), images
 * from the object store's presigned URLs, and requests to this origin.
 */
export const DASHBOARD_CONTENT_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // uPlot and bull-board size their elements with style attributes.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob: http: https:",
  "font-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'self'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

export function setDashboardHeaders(response: Response): void {
  response.setHeader('Content-Security-Policy', DASHBOARD_CONTENT_POLICY);
  response.setHeader('X-Content-Type-Options', 'nosniff');
  // Presigned links carry credentials in their query: no Referer should repeat a page's URL.
  response.setHeader('Referrer-Policy', 'no-referrer');
}

export const dashboardHeaders: RequestHandler = (_request, response, next) => {
  setDashboardHeaders(response);
  next();
};
