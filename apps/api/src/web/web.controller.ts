import * as path from 'node:path';
import { Controller, Get, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../http/public.decorator';
import { setDashboardHeaders } from './content-policy';

/** Where `npm run build` writes the dashboard: apps/web/dist, seen from apps/api/{src,dist}/web. */
export const WEB_DIST = path.resolve(__dirname, '../../../web/dist');
export const DASHBOARD_PATH = '/ui/';

/**
 * The dashboard's files. They are public: they hold no data, and the page signs in (POST /session)
 * before it asks for any. Client routes live in the URL's fragment, so every path here is a file.
 */
@ApiExcludeController()
@Controller()
export class WebController {
  @Get()
  @Public()
  home(@Res() response: Response): void {
    response.redirect(302, DASHBOARD_PATH);
  }

  @Get(['ui', 'ui/*path'])
  @Public()
  file(@Param('path') segments: string[] | string | undefined, @Res() response: Response): void {
    const file = [segments ?? []].flat().join('/') || 'index.html';
    setDashboardHeaders(response);
    // Revalidated on every load, so a rebuilt dashboard is seen at once.
    response.setHeader('Cache-Control', 'no-cache');
    response.sendFile(file, { root: WEB_DIST, dotfiles: 'deny' }, (error?: Error) => {
      if (!error || response.headersSent) return;
      response.status(404).json({
        statusCode: 404,
        error: 'Not Found',
        message:
          file === 'index.html'
            ? `the dashboard is not built (no ${path.join(WEB_DIST, 'index.html')}): run "npm run build"`
            : `no dashboard file "${file}"`,
      });
    });
  }
}
