import { DeviceMutex, MutexAbortedError } from '../src/device-mutex';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('DeviceMutex', () => {
  test('grants the device to one holder at a time, in arrival order', async () => {
    const mutex = new DeviceMutex();
    const events: string[] = [];
    const job = (name: string, ms: number) =>
      mutex.runExclusive(name, async () => {
        events.push(`start ${name}`);
        expect(mutex.currentHolder).toBe(name);
        await new Promise((resolve) => setTimeout(resolve, ms));
        events.push(`end ${name}`);
      });
    await Promise.all([job('a', 20), job('b', 5), job('c', 1)]);
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(mutex.locked).toBe(false);
    expect(mutex.currentHolder).toBeNull();
  });

  test('passes ownership straight to the next waiter, so nobody slips in between', async () => {
    const mutex = new DeviceMutex();
    const releaseA = await mutex.acquire('a');
    const b = mutex.acquire('b');
    releaseA();
    // A newcomer arriving after the release must queue behind b.
    const c = mutex.acquire('c');
    const releaseB = await b;
    expect(mutex.currentHolder).toBe('b');
    let cGranted = false;
    void c.then(() => (cGranted = true));
    await tick();
    expect(cGranted).toBe(false);
    releaseB();
    (await c)();
    expect(mutex.locked).toBe(false);
  });

  test('a release function works once; calling it again does not free a later holder', async () => {
    const mutex = new DeviceMutex();
    const releaseA = await mutex.acquire('a');
    releaseA();
    const releaseB = await mutex.acquire('b');
    releaseA();
    expect(mutex.locked).toBe(true);
    expect(mutex.currentHolder).toBe('b');
    releaseB();
    expect(mutex.locked).toBe(false);
  });

  test('an aborted waiter leaves the queue and the others keep their order', async () => {
    const mutex = new DeviceMutex();
    const releaseA = await mutex.acquire('a');
    const controller = new AbortController();
    const b = mutex.acquire('b', controller.signal);
    const c = mutex.acquire('c');
    expect(mutex.waiting).toBe(2);
    controller.abort(new Error('worker shutting down'));
    await expect(b).rejects.toThrow(MutexAbortedError);
    await expect(b).rejects.toThrow(/worker shutting down/);
    expect(mutex.waiting).toBe(1);
    releaseA();
    const releaseC = await c;
    expect(mutex.currentHolder).toBe('c');
    releaseC();
  });

  test('an already aborted signal is refused without taking the device', async () => {
    const mutex = new DeviceMutex();
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(mutex.acquire('a', controller.signal)).rejects.toThrow(MutexAbortedError);
    expect(mutex.locked).toBe(false);
  });

  test('runExclusive releases the device when the work throws', async () => {
    const mutex = new DeviceMutex();
    await expect(
      mutex.runExclusive('a', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(mutex.locked).toBe(false);
  });
});
