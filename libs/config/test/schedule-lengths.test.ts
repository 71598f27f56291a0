import { ConfigError, parseRunConfig, scheduleLengths, scheduleStepProblems } from '../src';

function reasonsOf(input: unknown): string[] {
  try {
    parseRunConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) return error.reasons;
    throw error;
  }
  return [];
}

describe('schedule spans', () => {
  it('resolves each form to steps, and the whole-epoch fields when no span is given', () => {
    const legacy = parseRunConfig({ train: { epochs: 3 }, optim: { warmupEpochs: 0.5 } });
    expect(scheduleLengths(legacy, 10)).toEqual({
      itersPerEpoch: 10,
      totalSteps: 30,
      lrWarmupSteps: 5,
      freezeLastLayerSteps: 10,
      teacherTempWarmup: { per: 'epoch', epochs: 0 },
    });
    const spans = parseRunConfig({
      train: { epochs: 3 },
      optim: { warmupFor: { fraction: 0.29 }, freezeLastLayerFor: { steps: 7 } },
      loss: { warmupTeacherTempFor: { fraction: 0.5 } },
    });
    expect(scheduleLengths(spans, 100)).toMatchObject({
      totalSteps: 300,
      lrWarmupSteps: 87,
      freezeLastLayerSteps: 7,
      teacherTempWarmup: { per: 'step', steps: 150 },
    });
  });

  it('refuses malformed spans with every reason and its path', () => {
    const reasons = reasonsOf({
      train: { epochs: 2 },
      optim: { warmupFor: { steps: 10, fraction: 0.1 }, freezeLastLayerFor: { fraction: 1.5 } },
      loss: { warmupTeacherTempFor: {} },
    });
    expect(reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^optim\.warmupFor: give exactly one of "epochs", "steps" or "fraction"/),
        expect.stringMatching(/^optim\.freezeLastLayerFor\.fraction: /),
        expect.stringMatching(/^loss\.warmupTeacherTempFor: give exactly one/),
      ]),
    );
    expect(
      reasonsOf({
        train: { epochs: 2 },
        optim: { warmupFor: { epochs: 3 } },
        loss: { warmupTeacherTempFor: { epochs: 1.5 } },
      }),
    ).toEqual([
      'optim.warmupFor.epochs: must not exceed train.epochs',
      expect.stringMatching(/^loss\.warmupTeacherTempFor\.epochs: must be whole/),
    ]);
    expect(reasonsOf({ train: { epochs: 2 }, optim: { warmupEpochs: 3 } })).toEqual([
      'optim.warmupEpochs: must not exceed train.epochs',
    ]);
  });

  it('names warmups longer than the run once its length in steps is known', () => {
    const config = parseRunConfig({
      train: { epochs: 1, steps: 40 },
      optim: { warmupFor: { steps: 50 } },
      loss: { warmupTeacherTempEpochs: 5 },
    });
    expect(scheduleStepProblems(config, 10)).toEqual([
      "optim.warmupFor: 50 steps exceed the run's 40 steps",
      "loss.warmupTeacherTempEpochs: 50 steps exceed the run's 40 steps",
    ]);
    expect(scheduleStepProblems(parseRunConfig({ train: { epochs: 1, steps: 40 } }), 100)).toEqual([]);
  });
});
