import { PermanentDataError } from '@dinoq/data';
import type { JobName } from '@dinoq/jobs';
import { ChecksumMismatchError, InvalidIdError, UnreadableObjectError } from '@dinoq/storage';

/*
 * Messages between the worker process and its compute child over the IPC channel. Everything is
 * structured-clone data (no class instances): errors travel as {name, message, unrecoverable}.
 */

/** What the child loaded; it reports this once, before it accepts any job. */
export interface ChildBackend {
  name: string;
  kind: 'gpu' | 'cpu';
  kernels: string;
  detail: string;
}

export interface ComputeJob {
  /** Sequence number of this request, echoed in every answer. */
  requestId: number;
  /** One the worker process registers to run in the compute process (src/worker-jobs.ts). */
  name: JobName;
  /** Already validated against the job catalogue by the parent. */
  data: unknown;
  jobId: string;
  queue: string;
  workerId: string;
  attempt: number;
}

export type ParentMessage =
  | { type: 'run'; job: ComputeJob }
  /** Stop the current job at its next safe point without committing anything. */
  | { type: 'abandon'; reason: string };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** Retrying cannot help (e.g. a non-finite loss): the parent fails the job without further attempts. */
  unrecoverable: boolean;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type ChildMessage =
  | { type: 'ready'; backend: ChildBackend }
  | { type: 'startup-failed'; error: SerializedError }
  | { type: 'progress'; requestId: number; progress: Record<string, unknown> }
  | {
      type: 'log';
      requestId: number | null;
      level: LogLevel;
      message: string;
      fields?: Record<string, unknown>;
      /** Also append the line to the BullMQ job's log. */
      toJob?: boolean;
    }
  | { type: 'result'; requestId: number; result: unknown }
  | { type: 'failed'; requestId: number; error: SerializedError };

/** Thrown in the child when a job must stop without retrying being of any use. */
export class UnrecoverableJobError extends Error {
  override readonly name = 'UnrecoverableJobError';
}

/** Thrown in the child when the parent asked it to drop the current job (worker shutdown). */
export class JobAbandonedError extends Error {
  override readonly name = 'JobAbandonedError';
}

/**
 * Errors that meet the same bytes or the same input on every attempt: a corrupt data set shard or
 * manifest, an import source that is missing or unusable, a corrupt checkpoint file or record, an
 * id that cannot be a key. Retrying them only delays the failure.
 */
const PERMANENT_ERRORS = [
  UnrecoverableJobError,
  PermanentDataError,
  ChecksumMismatchError,
  UnreadableObjectError,
  InvalidIdError,
];

export function isUnrecoverable(error: unknown): boolean {
  return PERMANENT_ERRORS.some((type) => error instanceof type);
}

export function serializeError(error: unknown, unrecoverable = false): SerializedError {
  if (error instanceof Error) {
    return {
      name: error.name,
      message: error.message,
      stack: error.stack,
      unrecoverable: unrecoverable || isUnrecoverable(error),
    };
  }
  return { name: 'Error', message: String(error), unrecoverable };
}
