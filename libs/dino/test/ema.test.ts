import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { emaUpdate } from '../src/ema';
import type { Params } from '../src/params';

const values = (t: tf.Tensor) => Array.from(t.dataSync());

function teacherParams(): Params {
  return new Map<string, tf.Variable>([
    ['backbone.norm.weight', tf.variable(tf.tensor1d([1, 2]), false)],
    ['head.last_layer.weight_g', tf.variable(tf.tensor2d([[1], [1]]), false)],
  ]);
}

function studentParams(): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['backbone.norm.weight', tf.tensor1d([3, 4])],
    ['head.last_layer.weight_g', tf.tensor2d([[2], [0]])],
  ]);
}

function disposeBoth(teacher: Params, student: Map<string, tf.Tensor>): void {
  tf.dispose([...teacher.values(), ...student.values()]);
}

describe('emaUpdate', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('moves every teacher tensor, frozen ones included, by θt ← m·θt + (1 − m)·θs', () => {
    const teacher = teacherParams();
    const student = studentParams();
    emaUpdate(teacher, student, 0.9);
    const w = values(teacher.get('backbone.norm.weight')!);
    expect(w[0]).toBeCloseTo(0.9 * 1 + 0.1 * 3, 6);
    expect(w[1]).toBeCloseTo(0.9 * 2 + 0.1 * 4, 6);
    const g = values(teacher.get('head.last_layer.weight_g')!);
    expect(g[0]).toBeCloseTo(1.1, 6);
    expect(g[1]).toBeCloseTo(0.9, 6);
    expect(values(student.get('backbone.norm.weight')!)).toEqual([3, 4]);
    disposeBoth(teacher, student);
  });

  it('keeps the teacher with m = 1 and copies the student with m = 0', () => {
    const teacher = teacherParams();
    const student = studentParams();
    emaUpdate(teacher, student, 1);
    expect(values(teacher.get('backbone.norm.weight')!)).toEqual([1, 2]);
    emaUpdate(teacher, student, 0);
    expect(values(teacher.get('backbone.norm.weight')!)).toEqual([3, 4]);
    expect(values(teacher.get('head.last_layer.weight_g')!)).toEqual([2, 0]);
    disposeBoth(teacher, student);
  });

  it('names a missing or mis-shaped student tensor and leaves the teacher untouched', () => {
    const teacher = teacherParams();
    const student = studentParams();
    const partial = new Map(student);
    partial.delete('head.last_layer.weight_g');
    expect(() => emaUpdate(teacher, partial, 0.5)).toThrow(
      /"head.last_layer.weight_g" is missing from the student/,
    );
    expect(values(teacher.get('backbone.norm.weight')!)).toEqual([1, 2]);
    const wrong = new Map(student);
    const bad = tf.zeros([2]);
    wrong.set('head.last_layer.weight_g', bad);
    expect(() => emaUpdate(teacher, wrong, 0.5)).toThrow(
      /"head.last_layer.weight_g" has shape \[2,1\] in the teacher but \[2\] in the student/,
    );
    expect(values(teacher.get('backbone.norm.weight')!)).toEqual([1, 2]);
    expect(() => emaUpdate(teacher, student, 1.1)).toThrow(/momentum must be in \[0, 1\]/);
    bad.dispose();
    disposeBoth(teacher, student);
  });

  it('keeps the tensor count constant', () => {
    const teacher = teacherParams();
    const student = studentParams();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) emaUpdate(teacher, student, 0.996);
    expect(tf.memory().numTensors).toBe(before);
    disposeBoth(teacher, student);
  });
});
