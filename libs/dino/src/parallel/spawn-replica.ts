import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { spawnModuleThread } from '@dinoq/threads';

/** Starts a replica worker thread (replica-worker.ts, or its build beside this file). */
export function spawnReplica(): Worker {
  return spawnModuleThread(path.join(__dirname, 'replica-worker'));
}
