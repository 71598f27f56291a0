/*
 * The shapes the dashboard reads, imported from where the API and the workers define them (type
 * imports only: erased by the bundler, so no server code reaches the browser).
 */
import type { z } from 'zod';
import type { ArtifactsService } from '../../api/src/artifacts/artifacts.service';
import type { HealthService } from '../../api/src/health/health.service';
import type { runListSchema } from '../../api/src/runs/run.schemas';

export type {
  AttentionIndex,
  EvaluationReport,
  LiveJobEvent,
  RunStatus,
  RunSummary,
  StoredMetricsLine,
  TrainingProgress,
} from '@dinoq/jobs';
export type { RunView } from '../../api/src/runs/run-view';
export type { EvaluationView } from '../../api/src/evaluations/evaluation.schemas';
export type { AttentionView } from '../../api/src/attention/attention.schemas';
export type { DatasetSummary } from '../../api/src/datasets/datasets.service';

/** GET /runs */
export type RunList = z.infer<typeof runListSchema>;

/** GET /runs/:id/artifacts */
export type RunArtifacts = Awaited<ReturnType<ArtifactsService['list']>>;

/** GET /health with a key. */
export type HealthReport = Awaited<ReturnType<HealthService['check']>>;

/** GET /presets */
export interface Preset {
  name: string;
  config: Record<string, unknown>;
}
