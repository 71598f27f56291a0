import { resolveModelDims, type RunConfig } from '@dinoq/config';
import { linearOptionsSchema } from '@dinoq/jobs';
import type { DatasetManifest } from '../repositories/datasets.repository';
import type { CreateEvaluationRequest } from './evaluation.schemas';

export interface EvaluationProblem {
  field: string;
  message: string;
}

/** The evaluation job reads the train split as its bank / probe training set and the test split as queries. */
const EVALUATION_SPLITS = ['train', 'test'] as const;

function datasetProblems(manifest: DatasetManifest): EvaluationProblem[] {
  const problems: EvaluationProblem[] = EVALUATION_SPLITS.filter(
    (split) => (manifest.splits[split]?.count ?? 0) === 0,
  ).map((split) => ({
    field: 'dataset',
    message: `evaluation needs images in a "${split}" split; dataset "${manifest.name}" has none (splits: ${Object.keys(manifest.splits).join(', ') || 'none'})`,
  }));
  if (manifest.classes.length === 0) {
    problems.push({
      field: 'dataset',
      message: `evaluation needs labelled images; dataset "${manifest.name}" names no classes`,
    });
  }
  return problems;
}

/** The probe's options as the worker will apply them (schema defaults filled in). */
function linearProblems(config: RunConfig, request: CreateEvaluationRequest): EvaluationProblem[] {
  const { lastBlocks, avgPool } = linearOptionsSchema.parse(request.linear ?? {});
  const { depth } = resolveModelDims(config.model);
  const problems: EvaluationProblem[] = [];
  if (lastBlocks > depth) {
    problems.push({
      field: 'linear.lastBlocks',
      message: `linear.lastBlocks ${lastBlocks} exceeds the depth of the run's model (${depth} blocks); set it to at most ${depth}`,
    });
  }
  if (avgPool && lastBlocks !== 1) {
    problems.push({
      field: 'linear.avgPool',
      message: `linear.avgPool needs linear.lastBlocks = 1 (as the reference), got ${lastBlocks}`,
    });
  }
  return problems;
}

/**
 * What would fail an evaluation job in the worker, found at submit: the run's config gives the
 * model's depth, the run's dataset manifest its splits and classes.
 */
export function evaluationProblems(
  config: RunConfig,
  manifest: DatasetManifest,
  request: CreateEvaluationRequest,
): EvaluationProblem[] {
  return [
    ...datasetProblems(manifest),
    ...(request.kinds.includes('linear') ? linearProblems(config, request) : []),
  ];
}
