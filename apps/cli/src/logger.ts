import pino from 'pino';

/** Structured logs go to stderr so that stdout stays free for results and progress. */
export const logger = pino({ level: process.env.LOG_LEVEL ?? 'info', base: undefined }, pino.destination(2));
