import {
  decodeSafetensors,
  encodeSafetensors,
  mergeRound,
  OUTER_STATE_FILE,
  type HostTensor,
  type OuterOptimizer,
} from '../src';

/*
 * The DiLoCo merge on hand-made checkpoint files: the outer Nesterov step on the student, plain
 * means of the teacher and the optimizer state, the momentum buffer carried between rounds.
 */

const f32 = (values: number[]): HostTensor => ({
  dtype: 'float32',
  shape: [values.length],
  data: new Float32Array(values),
});

function files(student: number[], teacher: number[], moment: number[], stepCount: number) {
  return {
    'student.safetensors': encodeSafetensors(new Map([['w', f32(student)]]), { role: 'student' }),
    'teacher.safetensors': encodeSafetensors(new Map([['w', f32(teacher)]]), { role: 'teacher' }),
    'optimizer.safetensors': encodeSafetensors(
      new Map([
        ['m.w', f32(moment)],
        ['dino_loss.center', f32([moment[0] * 2])],
      ]),
      { step_counts: JSON.stringify({ w: stepCount }) },
    ),
    'state.json': new TextEncoder().encode(
      JSON.stringify(
        { format: 'dinoq-checkpoint', version: 1, step: 7, epoch: 0, rng: { seed: 3, step: 7 } },
        null,
        2,
      ),
    ),
  };
}

const values = (bytes: Uint8Array, name = 'w') =>
  Array.from(decodeSafetensors(bytes).tensors.get(name)!.data as Float32Array);

const start = { 'student.safetensors': files([1, 2], [0, 0], [0, 0], 0)['student.safetensors'] };
const sliceA = files([0.5, 1.5], [0.1, 0.3], [0.2, 0.4], 4);
const sliceB = files([0.7, 2.5], [0.3, 0.5], [0.4, 0.8], 5);
const paper: OuterOptimizer = { lr: 0.7, momentum: 0.9, nesterov: true };

describe('mergeRound', () => {
  test('outer lr 1 with momentum 0 is plain parameter averaging, bit for bit', () => {
    const a = [0.1, 1e-7, -3.3333333, 7];
    const b = [0.2, 3e-7, 1.1111111, -7];
    const c = [0.3, -2e-7, 5.5555555, 1];
    const slices = [a, b, c].map((student) => files(student, student, student, 1));
    const merged = mergeRound({
      start: { 'student.safetensors': files([9, 9, 9, 9], [0], [0], 0)['student.safetensors'] },
      slices,
      outer: { lr: 1, momentum: 0, nesterov: true },
      step: 12,
      epoch: 3,
    });
    const mean = Float32Array.from(
      a.map((_, k) => (Math.fround(a[k]) + Math.fround(b[k]) + Math.fround(c[k])) / 3),
    );
    expect(values(merged['student.safetensors'])).toEqual(Array.from(mean));
    expect(values(merged['teacher.safetensors'])).toEqual(Array.from(mean));
    expect(merged[OUTER_STATE_FILE]).toBeUndefined();
  });

  test('the paper outer step: Nesterov on the averaged change, the momentum buffer kept', () => {
    const merged = mergeRound({ start, slices: [sliceA, sliceB], outer: paper, step: 16, epoch: 2 });
    // mean [0.6, 2.0]; Δ = [0.4, 0]; v = Δ; θ' = θ − 0.7·(Δ + 0.9·v) = [1 − 0.532, 2].
    const student = values(merged['student.safetensors']);
    expect(student[0]).toBeCloseTo(0.468, 6);
    expect(student[1]).toBe(2);
    expect(values(merged[OUTER_STATE_FILE])[0]).toBeCloseTo(0.4, 6);

    // The next round starts from the merge and carries its momentum: v' = 0.9·v + Δ'.
    const next = mergeRound({
      start: merged,
      slices: [files([0.368, 2], [0], [0], 9), files([0.368, 2], [0], [0], 9)],
      outer: paper,
      step: 32,
      epoch: 4,
    });
    expect(values(next[OUTER_STATE_FILE])[0]).toBeCloseTo(0.9 * 0.4 + 0.1, 5);
    // θ'' = 0.468 − 0.7·(0.1 + 0.9·0.46)
    expect(values(next['student.safetensors'])[0]).toBeCloseTo(0.468 - 0.7 * (0.1 + 0.9 * 0.46), 5);
  });

  test('heavy-ball momentum when nesterov is off', () => {
    const merged = mergeRound({
      start,
      slices: [sliceA, sliceB],
      outer: { ...paper, nesterov: false },
      step: 16,
      epoch: 2,
    });
    expect(values(merged['student.safetensors'])[0]).toBeCloseTo(1 - 0.7 * 0.4, 6);
  });

  test('teacher, moments and center are averaged; step counts take the largest; state moves to the merged step', () => {
    const merged = mergeRound({ start, slices: [sliceA, sliceB], outer: paper, step: 16, epoch: 2 });
    expect(values(merged['teacher.safetensors'])).toEqual([Math.fround(0.2), Math.fround(0.4)]);
    const optimizer = decodeSafetensors(merged['optimizer.safetensors']);
    expect(Array.from(optimizer.tensors.get('m.w')!.data)).toEqual([Math.fround(0.3), Math.fround(0.6)]);
    expect(Array.from(optimizer.tensors.get('dino_loss.center')!.data)).toEqual([Math.fround(0.6)]);
    expect(JSON.parse(optimizer.metadata.step_counts)).toEqual({ w: 5 });
    const state = JSON.parse(new TextDecoder().decode(merged['state.json']));
    expect(state).toMatchObject({
      step: 16,
      epoch: 2,
      rng: { seed: 3, step: 16 },
      format: 'dinoq-checkpoint',
    });
  });

  test('one slice is committed as it is, with the outer momentum carried unchanged', () => {
    const outer = encodeSafetensors(new Map([['w', f32([0.25, 0])]]));
    const merged = mergeRound({
      start: { ...start, [OUTER_STATE_FILE]: outer },
      slices: [sliceA],
      outer: paper,
      step: 7,
      epoch: 0,
    });
    expect(merged).toEqual({ ...sliceA, [OUTER_STATE_FILE]: outer });
  });

  test('refuses slices whose tensors differ in shape, naming the slice and the tensor', () => {
    const bad = files([1, 2, 3], [0, 0, 0], [0, 0, 0], 1);
    expect(() => mergeRound({ start, slices: [sliceA, bad], outer: paper, step: 16, epoch: 2 })).toThrow(
      /slice 1: tensor "w" is \[3\], expected \[2\]/,
    );
    expect(() => mergeRound({ start, slices: [], outer: paper, step: 16, epoch: 2 })).toThrow(
      /at least one slice/,
    );
  });
});
