import pino, { type Logger } from 'pino';

export type { Logger };

/** JSON lines on stderr; stdout carries nothing, so a supervisor can keep logs apart from output. */
export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'dinoq-worker', pid: process.pid } }, pino.destination(2));
}
