import type { EvaluationReport } from '@dinoq/jobs';
import { learningLine, type EvalLike } from '../src/commands/demo';

function evaluation(step: number, top1: number, random?: number): EvalLike {
  const report = {
    step,
    knn: [
      { k: 10, top1: top1 - 1, top5: 90 },
      { k: 20, top1, top5: 91 },
    ],
    baselines:
      random === undefined
        ? undefined
        : {
            knn: {
              randomInit: [{ k: 20, top1: random, top5: 90 }],
              rawPixels: [{ k: 20, top1: 80, top5: 97 }],
            },
          },
  } as unknown as EvaluationReport;
  return { step, report };
}

describe("the demo's learning line", () => {
  test('names the first and the last k=20 score and the random-init baseline', () => {
    expect(learningLine([evaluation(150, 49.14), evaluation(400, 52.5), evaluation(600, 58.27, 47.7)])).toBe(
      'k=20 top-1 went from 49.1 % (step 150) to 58.3 % (step 600); random init 47.7 %',
    );
  });

  test('one evaluation, or none', () => {
    expect(learningLine([evaluation(600, 58.27)])).toBe('k=20 top-1 58.3 % at step 600');
    expect(learningLine([{ step: 5, report: null }])).toBe('no k=20 evaluation completed');
  });
});
