import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import '../register-gradients';
import { selectBackend } from '../backend/select-backend';
import { installNativeKernels, nativeKernelsInstalled } from '../backend/native-kernels';
import type { TrainState } from '../step-types';
import { applyUpdate, computeGradients } from '../grad-step';
import { checkpointOf, createTrainState, stateChecksum } from '../train-state';
import type { ReplicaInit, ReplicaReply, ReplicaRequest } from './protocol';

/**
 * One data-parallel replica: its own tfjs, wasm heap and copy of the training state. It computes
 * gradients on the rows it is sent and applies the summed update it gets back, so all replicas
 * stay bit-identical.
 */

let state: TrainState | null = null;
let datasetSize = 0;

function requireState(): TrainState {
  if (!state) throw new Error('replica used before init');
  return state;
}

async function init(msg: ReplicaInit): Promise<ReplicaReply & { type: 'ready' }> {
  const backend = await selectBackend(msg.backend);
  if (nativeKernelsInstalled()) installNativeKernels({ threads: msg.blasThreads });
  datasetSize = msg.datasetSize;
  state = createTrainState(msg.config, msg.files, msg.lane);
  return { id: 0, type: 'ready', backend, step: state.step, stride: state.stride };
}

/** Concatenates the gradients into one transferable array, in the student's parameter order. */
function flatten(
  grads: Map<string, tf.Tensor>,
  order: Iterable<string>,
): { flat: Float32Array; names: string[] } {
  const names = [...order].filter((n) => grads.has(n));
  let size = 0;
  for (const n of names) size += grads.get(n)!.size;
  const flat = new Float32Array(size);
  let at = 0;
  for (const n of names) {
    const g = grads.get(n)!;
    flat.set(g.dataSync() as Float32Array, at);
    at += g.size;
  }
  return { flat, names };
}

function unflatten(s: TrainState, flat: Float32Array, names: string[]): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  let at = 0;
  for (const n of names) {
    const p = s.student.get(n);
    if (!p) {
      tf.dispose([...out.values()]);
      throw new Error(`apply: gradient "${n}" names no student parameter`);
    }
    out.set(n, tf.tensor(flat.subarray(at, at + p.size), p.shape, 'float32'));
    at += p.size;
  }
  if (at !== flat.length) {
    tf.dispose([...out.values()]);
    throw new Error(`apply: ${flat.length} gradient values for parameters holding ${at}`);
  }
  return out;
}

async function handle(msg: ReplicaRequest): Promise<{ reply: ReplicaReply; transfer: ArrayBuffer[] }> {
  switch (msg.type) {
    case 'init':
      return { reply: { ...(await init(msg.init)), id: msg.id }, transfer: [] };
    case 'gradients': {
      const s = requireState();
      const t0 = performance.now();
      const part = computeGradients(s, msg.batch, msg.hyper, msg.micros, msg.totalBatch);
      const computeMs = performance.now() - t0;
      try {
        const { flat, names } = flatten(part.grads, s.student.keys());
        const teacherSum = Float32Array.from(part.teacherSum.dataSync() as Float32Array);
        const packMs = performance.now() - t0 - computeMs;
        return {
          reply: {
            id: msg.id,
            type: 'gradients',
            grads: flat,
            names,
            teacherSum,
            loss: part.loss,
            teacherEntropy: part.teacherEntropy,
            klTeacherStudent: part.klTeacherStudent,
            computeMs,
            packMs,
          },
          transfer: [flat.buffer as ArrayBuffer, teacherSum.buffer as ArrayBuffer],
        };
      } finally {
        tf.dispose([...part.grads.values()]);
        part.teacherSum.dispose();
      }
    }
    case 'apply': {
      const s = requireState();
      const t0 = performance.now();
      const grads = unflatten(s, msg.grads, msg.names);
      const teacherSum = tf.tensor2d(msg.teacherSum, [1, msg.teacherSum.length]);
      let maxGradNorm: number;
      try {
        maxGradNorm = applyUpdate(s, grads, teacherSum, msg.hyper, msg.totalBatch);
      } finally {
        tf.dispose([...grads.values()]);
        teacherSum.dispose();
      }
      const applyMs = performance.now() - t0;
      const numTensors = tf.memory().numTensors;
      return {
        reply: { id: msg.id, type: 'applied', maxGradNorm, step: s.step, numTensors, applyMs },
        transfer: [],
      };
    }
    case 'checkpoint': {
      // Copied, not transferred: the blobs may be views sharing one buffer.
      const files = checkpointOf(requireState(), datasetSize);
      return { reply: { id: msg.id, type: 'checkpoint', files }, transfer: [] };
    }
    case 'checksum': {
      const s = requireState();
      const checksum = stateChecksum({ ...s, moments: s.optimizer.state().values() });
      return { reply: { id: msg.id, type: 'checksum', checksum }, transfer: [] };
    }
  }
}

const port = parentPort;
if (!port) throw new Error('replica-worker must run in a worker thread');
let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: ReplicaRequest) => {
  queue = queue.then(async () => {
    try {
      const { reply, transfer } = await handle(msg);
      port.postMessage(reply, transfer);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      port.postMessage({
        id: msg.id,
        type: 'error',
        message: err.message,
        stack: err.stack,
      } satisfies ReplicaReply);
    }
  });
});
