import { parseRunConfig } from '@dinoq/config';
import {
  buildSchedules,
  cosineSchedule,
  linspace,
  lrPeak,
  momentumSchedule,
  teacherTempSchedule,
} from '../src/schedules';

const cosineAt = (base: number, final: number, j: number, n: number) =>
  final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * j) / n));

describe('schedules', () => {
  it('linspace includes both endpoints', () => {
    expect(Array.from(linspace(0, 1, 5))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(Array.from(linspace(2, 3, 1))).toEqual([2]);
    expect(linspace(2, 3, 0).length).toBe(0);
  });

  it('cosine schedule: warmup from exactly 0 to base, then cosine towards final', () => {
    const s = cosineSchedule({ base: 1, final: 0.1, epochs: 3, itersPerEpoch: 4, warmupEpochs: 1 });
    expect(s.length).toBe(12);
    expect(s[0]).toBe(0);
    expect(s[1]).toBeCloseTo(1 / 3, 12);
    // The warmup's last value is base, and so is the cosine's first.
    expect(s[3]).toBe(1);
    expect(s[4]).toBe(1);
    expect(s[11]).toBeCloseTo(cosineAt(1, 0.1, 7, 8), 12);
    expect(s[11]).toBeGreaterThan(0.1);
    for (let i = 5; i < 12; i++) expect(s[i]).toBeLessThan(s[i - 1]);
  });

  it('cosine schedule without warmup starts at base; startWarmup and fractional warmups are honoured', () => {
    const s = cosineSchedule({ base: 0.04, final: 0.4, epochs: 2, itersPerEpoch: 5 });
    expect(s[0]).toBeCloseTo(0.04, 15);
    expect(s[9]).toBeCloseTo(cosineAt(0.04, 0.4, 9, 10), 12);
    const w = cosineSchedule({
      base: 2,
      final: 0,
      epochs: 1,
      itersPerEpoch: 10,
      warmupEpochs: 0.3,
      startWarmup: 1,
    });
    expect(Array.from(w.slice(0, 4))).toEqual([1, 1.5, 2, 2]);
    const one = cosineSchedule({ base: 2, final: 0, epochs: 1, itersPerEpoch: 10, warmupEpochs: 0.1 });
    expect(one[0]).toBe(0);
    expect(one[1]).toBe(2);
    expect(cosineSchedule({ base: 2, final: 0, epochs: 1, itersPerEpoch: 100, warmupEpochs: 0.29 })[28]).toBe(
      2,
    );
  });

  it('cosine schedule rejects impossible settings', () => {
    const ok = { base: 1, final: 0, epochs: 2, itersPerEpoch: 3 };
    expect(() => cosineSchedule({ ...ok, warmupEpochs: 3 })).toThrow(
      /warmupEpochs must be in \[0, epochs=2\]/,
    );
    expect(() => cosineSchedule({ ...ok, itersPerEpoch: 2.5 })).toThrow(
      /itersPerEpoch must be an integer ≥ 1/,
    );
    expect(() => cosineSchedule({ ...ok, epochs: 0 })).toThrow(/epochs must be an integer ≥ 1/);
    expect(() => cosineSchedule({ ...ok, base: NaN })).toThrow(/base must be a finite number/);
  });

  it('teacher temperature: linear over the warmup epochs (reaching the target at the last one), then constant', () => {
    const s = teacherTempSchedule({
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.07,
      warmupEpochs: 30,
      epochs: 100,
    });
    expect(s.length).toBe(100);
    expect(s[0]).toBeCloseTo(0.04, 15);
    expect(s[1]).toBeCloseTo(0.04 + 0.03 / 29, 12);
    expect(s[29]).toBe(0.07);
    expect(s[30]).toBe(0.07);
    expect(s[99]).toBe(0.07);
    const flat = teacherTempSchedule({
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.05,
      warmupEpochs: 0,
      epochs: 3,
    });
    expect(Array.from(flat)).toEqual([0.05, 0.05, 0.05]);
    expect(() =>
      teacherTempSchedule({ warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupEpochs: 4, epochs: 3 }),
    ).toThrow(/warmupEpochs \(4\) must not exceed epochs \(3\)/);
  });

  it('teacher momentum: cosine from the start value towards 1, never reaching it', () => {
    const s = momentumSchedule({ momentumTeacher: 0.996, epochs: 2, itersPerEpoch: 50 });
    expect(s.length).toBe(100);
    expect(s[0]).toBeCloseTo(0.996, 15);
    expect(s[99]).toBeCloseTo(1 - ((1 - 0.996) * (1 + Math.cos((Math.PI * 99) / 100))) / 2, 12);
    expect(s[99]).toBeLessThan(1);
    expect(s[50]).toBeCloseTo(0.998, 12);
  });

  it('scales the peak learning rate linearly per 256 images', () => {
    expect(lrPeak(0.0005, 256)).toBe(0.0005);
    expect(lrPeak(0.0005, 512)).toBeCloseTo(0.001, 15);
    expect(lrPeak(0.0005, 1024)).toBeCloseTo(0.002, 15);
    expect(() => lrPeak(0.0005, 0)).toThrow(/globalBatch must be an integer ≥ 1/);
  });

  it('builds all four schedules from a run config', () => {
    const config = parseRunConfig({
      train: { epochs: 4, batchSize: 512 },
      optim: { warmupEpochs: 1, minLr: 1e-6 },
      loss: { warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 2 },
    });
    const s = buildSchedules(config, 5);
    expect(s.lr.length).toBe(20);
    expect(s.lr[0]).toBe(0);
    expect(s.lr[4]).toBeCloseTo(0.001, 15);
    expect(s.lr[5]).toBeCloseTo(0.001, 15);
    expect(s.lr[19]).toBeCloseTo(cosineAt(0.001, 1e-6, 14, 15), 15);
    expect(s.wd[0]).toBeCloseTo(0.04, 15);
    expect(s.wd[19]).toBeCloseTo(cosineAt(0.04, 0.4, 19, 20), 12);
    expect(s.momentum[0]).toBeCloseTo(0.996, 15);
    expect(s.momentum[19]).toBeLessThan(1);
    expect(Array.from(s.teacherTemp)).toEqual([0.04, 0.07, 0.07, 0.07]);
  });
});
