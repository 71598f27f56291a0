#!/usr/bin/env node
import { buildProgram } from './program';
import { logger } from './logger';

buildProgram()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    logger.error({ err: e }, (e as Error).message);
    process.exitCode = 1;
  });
