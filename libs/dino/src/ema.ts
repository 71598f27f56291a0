import * as tf from '@tensorflow/tfjs-core';
import type { ParamTensors, Params } from './params';

/**
 * Teacher update after each optimizer step (spec §6): θt ← m·θt + (1 − m)·θs for every
 * teacher parameter, trainable or not (a frozen weight_g included, as in the reference).
 * Without this momentum teacher DINO collapses (spec §16).
 *
 * Everything is checked before the first write, so a mismatch leaves the teacher untouched.
 */
export function emaUpdate(teacher: Params, student: ParamTensors, momentum: number): void {
  if (!(momentum >= 0 && momentum <= 1))
    throw new Error(`emaUpdate: momentum must be in [0, 1], got ${momentum}`);
  for (const [name, t] of teacher) {
    const s = student.get(name);
    if (!s) throw new Error(`emaUpdate: teacher parameter "${name}" is missing from the student`);
    if (!tf.util.arraysEqual(s.shape, t.shape))
      throw new Error(
        `emaUpdate: "${name}" has shape [${t.shape}] in the teacher but [${s.shape}] in the student`,
      );
    if (s.dtype !== t.dtype)
      throw new Error(`emaUpdate: "${name}" is ${t.dtype} in the teacher but ${s.dtype} in the student`);
  }
  for (const [name, t] of teacher) {
    const s = student.get(name)!;
    tf.tidy(() => t.assign(tf.add(tf.mul(t, momentum), tf.mul(s, 1 - momentum))));
  }
}
