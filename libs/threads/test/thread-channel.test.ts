import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { spawnModuleThread } from '../src/spawn-module-thread';
import { ThreadChannel, type ChannelReply } from '../src/thread-channel';

/** A thread that echoes, fails on request, or dies, as each message says. */
const ECHO = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (m) => {
  if (m.op === 'echo') parentPort.postMessage({ id: m.id, type: 'echo', value: m.value });
  else if (m.op === 'fail') parentPort.postMessage({ id: m.id, type: 'error', message: 'no such thing', stack: 'Error: no such thing\\n    at here' });
  else if (m.op === 'slow') setTimeout(() => parentPort.postMessage({ id: m.id, type: 'echo', value: m.value }), 50);
  else if (m.op === 'die') process.exit(7);
});
`;

type Reply = ChannelReply & { value?: number };

describe('ThreadChannel', () => {
  test('matches replies to requests, even out of order', async () => {
    const channel = new ThreadChannel<Reply>('echo thread', new Worker(ECHO, { eval: true }));
    try {
      const slow = channel.request({ op: 'slow', value: 1 });
      const fast = channel.request({ op: 'echo', value: 2 });
      expect(await fast).toMatchObject({ type: 'echo', value: 2 });
      expect(await slow).toMatchObject({ type: 'echo', value: 1 });
    } finally {
      await channel.close();
    }
  });

  test("an error reply rejects with the thread's message under the channel's label", async () => {
    const channel = new ThreadChannel<Reply>('echo thread', new Worker(ECHO, { eval: true }));
    try {
      const error = await channel.request({ op: 'fail' }).catch((e: Error) => e);
      expect((error as Error).message).toBe('echo thread: no such thing');
      expect((error as Error).stack).toContain('at here');
      // The channel still works afterwards.
      expect(await channel.request({ op: 'echo', value: 3 })).toMatchObject({ value: 3 });
    } finally {
      await channel.close();
    }
  });

  test('a thread that exits rejects what is in flight and every later request', async () => {
    const channel = new ThreadChannel<Reply>('echo thread', new Worker(ECHO, { eval: true }));
    const inFlight = channel.request({ op: 'slow', value: 1 });
    await expect(channel.request({ op: 'die' })).rejects.toThrow('echo thread exited with code 7');
    await expect(inFlight).rejects.toThrow('echo thread exited with code 7');
    await expect(channel.request({ op: 'echo', value: 1 })).rejects.toThrow(/exited with code 7/);
    await channel.close();
  });

  test('after close, requests are refused', async () => {
    const channel = new ThreadChannel<Reply>('echo thread', new Worker(ECHO, { eval: true }));
    await channel.close();
    await expect(channel.request({ op: 'echo', value: 1 })).rejects.toThrow('echo thread was closed');
  });
});

describe('spawnModuleThread', () => {
  test('names the module it cannot find', () => {
    const base = path.join(__dirname, 'no-such-module');
    expect(() => spawnModuleThread(base)).toThrow(`neither ${base}.js nor ${base}.ts exists`);
  });
});
