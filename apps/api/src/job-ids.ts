import { validateId } from '@dinoq/storage';

/*
 * Deterministic BullMQ job ids (no ':' and never purely numeric): the same request maps to the same
 * job, so a retried POST or a second API replica cannot enqueue the work twice.
 */

export function importJobId(datasetName: string): string {
  return `import-${validateId('name', datasetName)}`;
}

export function evaluationJobId(runId: string, evalId: string): string {
  return `${validateId('runId', runId)}-eval-${validateId('evalId', evalId)}`;
}

export function attentionJobId(runId: string, exportId: string): string {
  return `${validateId('runId', runId)}-attention-${validateId('exportId', exportId)}`;
}
