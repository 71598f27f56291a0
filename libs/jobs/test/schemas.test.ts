import { InvalidIdError, UnreadableObjectError, validateId } from '@dinoq/storage';
import {
  evaluationReportSchema,
  idSchema,
  parseJob,
  parseMetricsFiles,
  parseStored,
  stepMetricsLine,
  stepMetricsLineSchema,
} from '../src';

const metrics = {
  step: 7,
  epoch: 0,
  loss: 8.1,
  lr: 0.001,
  weightDecay: 0.04,
  momentum: 0.996,
  teacherTemp: 0.04,
  teacherEntropy: 3.2,
  klTeacherStudent: 0.5,
  maxGradNorm: 1.5,
  imagesPerSecond: 40,
  stepMs: 1600,
  dataWaitMs: 0,
  dataMs: 30,
  replicas: 2,
  backend: 'wasm',
  numTensors: 310,
};

describe('ids', () => {
  it.each(['run-1', 'a', 'x_y-z', 'a'.repeat(64), '', 'A', '-a', 'a/b', '../x', 'a'.repeat(65), 'é'])(
    'the zod schema and validateId agree on %j',
    (value) => {
      let storageAccepts = true;
      try {
        validateId('id', value);
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidIdError);
        storageAccepts = false;
      }
      expect(idSchema.safeParse(value).success).toBe(storageAccepts);
    },
  );

  it('job payloads refuse a bad id naming the field and the rule', () => {
    expect(() => parseJob('evaluate', { runId: 'r', evalId: 'E!', step: null, kinds: ['knn'] })).toThrow(
      /evalId: must be 1-64 lowercase letters/,
    );
  });
});

describe('metrics lines', () => {
  it('are built from the step loop’s metrics, leaving out what the line does not hold', () => {
    const line = stepMetricsLine({ ...metrics, timings: { packMs: 3 } } as typeof metrics, 1, new Date(0));
    expect(stepMetricsLineSchema.strict().parse(line)).toEqual({
      ...metrics,
      dataThreads: 1,
      time: '1970-01-01T00:00:00.000Z',
    });
  });

  it('are read back in order; older lines pass, damaged ones are skipped and counted', () => {
    const line = (step: number) => JSON.stringify(stepMetricsLine({ ...metrics, step }, 0));
    const { dataMs: _dataMs, replicas: _replicas, ...older } = metrics;
    const files = [
      { key: 'runs/r/metrics/000000.jsonl', text: `${line(0)}\n{"step":1,"loss":\n${line(2)}\n` },
      {
        key: 'runs/r/metrics/000001.jsonl',
        text: `${JSON.stringify({ ...older, step: 3, time: 't', extra: 'kept' })}\n${JSON.stringify({ step: 'four' })}\n\n`,
      },
    ];
    const { lines, skipped } = parseMetricsFiles(files);
    expect(lines.map((entry) => entry.step)).toEqual([0, 2, 3]);
    expect(lines[2]).toMatchObject({ extra: 'kept', loss: 8.1 });
    expect(skipped).toEqual([
      { key: 'runs/r/metrics/000000.jsonl', line: 2, reason: 'not valid JSON' },
      { key: 'runs/r/metrics/000001.jsonl', line: 2, reason: expect.stringMatching(/^step: .*; epoch: /) },
    ]);
  });
});

describe('stored reports', () => {
  const report = {
    evalId: 'e1',
    runId: 'r1',
    step: 4,
    kinds: ['knn'],
    network: 'teacher',
    knn: [{ k: 20, top1: 71.5, top5: 95 }],
    knnSettings: { ks: [20], temperature: 0.07, trainImages: 100, testImages: 10 },
    linear: null,
    scheduled: false,
    durationMs: 1200,
    backend: 'wasm',
    createdAt: '2026-01-01T00:00:00.000Z',
  };

  it('are returned as stored, fields the schema does not name included', () => {
    const stored = { ...report, knn: [{ k: 20, top1: 71.5, top5: 95, note: 'newer writer' }], extra: 1 };
    expect(parseStored(evaluationReportSchema, 'runs/r1/evals/e1.json', stored)).toBe(stored);
  });

  it('that do not fit name the key and the fields', () => {
    const failure = (() => {
      try {
        parseStored(evaluationReportSchema, 'runs/r1/evals/e1.json', { ...report, knn: { top1: 3 } });
      } catch (error) {
        return error;
      }
    })();
    expect(failure).toBeInstanceOf(UnreadableObjectError);
    expect(failure).toMatchObject({ key: 'runs/r1/evals/e1.json', reason: expect.stringMatching(/^knn: /) });
  });
});
