import { evaluationSummary, knnLines, top1WithBaselines } from '../src/evaluation-summary';

describe('scores printed beside their baselines', () => {
  const baselines = {
    knn: {
      randomInit: [
        { k: 10, top1: 50.04, top5: 90 },
        { k: 20, top1: 49.25, top5: 91 },
      ],
      rawPixels: [
        { k: 10, top1: 80.5, top5: 95 },
        { k: 20, top1: 81.06, top5: 96 },
      ],
    },
    linear: { randomInit: { top1: 60, top5: 95 }, rawPixels: { top1: 84.44, top5: 99 } },
  };

  it('prints a k-NN score with the random-init and raw-pixel scores of the same k', () => {
    expect(knnLines([{ k: 20, top1: 61.23 }], baselines.knn)).toEqual([
      'k=20 top-1 61.2 % (random 49.3 %, pixels 81.1 %)',
    ]);
  });

  it('prints the score alone where no baseline (or none for that k) was computed', () => {
    expect(top1WithBaselines({ top1: 45.6 })).toBe('top-1 45.6 %');
    expect(knnLines([{ k: 200, top1: 70 }], baselines.knn)).toEqual(['k=200 top-1 70.0 %']);
  });

  it("summarises a report's k-NN and linear scores with their baselines", () => {
    const report = {
      knn: [
        { k: 10, top1: 60, top5: 90 },
        { k: 20, top1: 61.2, top5: 92 },
      ],
      linear: { top1: 70.25 } as never,
      baselines,
    };
    expect(evaluationSummary(report)).toEqual([
      'k-NN k=10 top-1 60.0 % (random 50.0 %, pixels 80.5 %)',
      'k-NN k=20 top-1 61.2 % (random 49.3 %, pixels 81.1 %)',
      'linear top-1 70.3 % (random 60.0 %, pixels 84.4 %)',
    ]);
    expect(evaluationSummary({ knn: report.knn, linear: null })).toEqual([
      'k-NN k=10 top-1 60.0 %',
      'k-NN k=20 top-1 61.2 %',
    ]);
  });
});
