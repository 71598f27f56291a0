/**
 * What the dashboard needs of the API: the session cookie (and how it is refused), the event
 * stream driven by BullMQ's queue events, the queue board behind the same guard, and the public
 * dashboard files. Real Redis and a real s3rver.
 */
import { QueueName, type LiveJobEvent } from '@dinoq/jobs';
import { ApiKeyVerifier } from '../src/http/api-key-verifier';
import { SESSION_COOKIE, SESSION_REQUEST_HEADER, readCookie } from '../src/http/session-token';
import { API_KEY, AUTH, startTestApi, type TestApi } from './api-fixture';

let t: TestApi;

beforeAll(async () => {
  t = await startTestApi();
});

afterAll(async () => {
  await t?.close();
});

async function signIn(apiKey = API_KEY): Promise<string> {
  const answer = await t.http.post('/session').send({ apiKey }).expect(204);
  const setCookie = ([] as string[]).concat(answer.headers['set-cookie'] ?? []);
  expect(setCookie).toHaveLength(1);
  const [pair] = setCookie[0].split(';');
  return pair;
}

describe('session cookie', () => {
  it('is set for a valid key only, HttpOnly and SameSite=Strict, without the key in it', async () => {
    const wrong = await t.http.post('/session').send({ apiKey: 'not-a-key' }).expect(401);
    expect(wrong.body.message).toBe('invalid API key');
    expect(wrong.headers['set-cookie']).toBeUndefined();

    const answer = await t.http.post('/session').send({ apiKey: API_KEY }).expect(204);
    const cookie = String(answer.headers['set-cookie']);
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=\\d+\\.[A-Za-z0-9_-]{43}; Path=/; Max-Age=28800`));
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).not.toContain(API_KEY);
  });

  it('authenticates reads; writes need the request header too', async () => {
    const cookie = await signIn();
    await t.http.get('/runs').set('Cookie', cookie).expect(200);
    expect((await t.http.get('/session').set('Cookie', cookie).expect(200)).body).toEqual({
      authRequired: true,
      authenticated: true,
    });
    const forged = await t.http.post('/runs/no-such-run/cancel').set('Cookie', cookie).expect(401);
    expect(forged.body.message).toContain(SESSION_REQUEST_HEADER);
    // Past authentication: the run does not exist.
    await t.http
      .post('/runs/no-such-run/cancel')
      .set('Cookie', cookie)
      .set(SESSION_REQUEST_HEADER, '1')
      .expect(404);
  });

  it('refuses a tampered cookie and reports signed-out state', async () => {
    const cookie = await signIn();
    const tampered = cookie.replace(/=(\d+)\./, (_m, expiry: string) => `=${Number(expiry) + 1}.`);
    const refused = await t.http.get('/runs').set('Cookie', tampered).expect(401);
    expect(refused.body.message).toMatch(/session .* sign in again/);
    expect((await t.http.get('/session').set('Cookie', tampered).expect(200)).body.authenticated).toBe(false);
    const cleared = await t.http.delete('/session').expect(204);
    expect(String(cleared.headers['set-cookie'])).toMatch(
      new RegExp(`^${SESSION_COOKIE}=; Path=/; Max-Age=0`),
    );
  });

  it('expires, and ends with the key it was opened with', () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const verifier = new ApiKeyVerifier(['alpha', 'beta'], false, () => now);
    const session = verifier.openSession('beta');
    expect(verifier.openSession('gamma')).toBeNull();
    const request = { method: 'GET', headers: { cookie: `other=1; ${SESSION_COOKIE}=${session?.token}` } };
    expect(verifier.verifyRequest(request)).toEqual({ ok: true });
    expect(new ApiKeyVerifier(['alpha'], false, () => now).verifyRequest(request).ok).toBe(false);
    now += (session?.maxAgeSeconds ?? 0) * 1000;
    expect(verifier.verifyRequest(request).ok).toBe(false);
    expect(readCookie('a=1; b = 2', 'b')).toBe('2');
  });
});

/** Reads server-sent events from GET /events until `done` accepts one; returns them all. */
async function readEvents(
  headers: Record<string, string>,
  done: (events: { event: string; data: unknown }[]) => boolean,
  onOpen: () => void,
): Promise<{ event: string; data: unknown }[]> {
  const controller = new AbortController();
  const response = await fetch(`${t.api.url}/events`, { headers, signal: controller.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; data: unknown }[] = [];
  let buffer = '';
  let opened = false;
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) throw new Error(`the stream ended after ${JSON.stringify(events)}`);
      buffer += value;
      const blocks = buffer.split('\n\n');
      buffer = blocks.pop() ?? '';
      for (const block of blocks) {
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
      if (!opened && events.some((e) => e.event === 'hello')) {
        opened = true;
        onOpen();
      }
    }
  } finally {
    controller.abort();
  }
  return events;
}

describe('GET /events', () => {
  it('needs a key', async () => {
    await t.http.get('/events').expect(401);
  });

  it('says hello once subscribed, then relays the job events of a run with its id', async () => {
    const cookie = await signIn();
    const queue = t.queue(QueueName.Attention);
    const jobs = (events: { event: string; data: unknown }[]) =>
      events.filter((e) => e.event === 'job').map((e) => e.data as LiveJobEvent);
    let reporting = true;
    let reported: Promise<void> = Promise.resolve();
    const report = async () => {
      const job = await queue.add(
        'attention',
        { runId: 'run-a', exportId: 'attn-1', step: null, images: { split: 'test', indices: [0] } },
        { jobId: 'attn-1' },
      );
      // Progress as a worker reports it, until the stream has shown some.
      for (let done = 0; reporting && done < 100; done++) {
        await job.updateProgress({ phase: 'upload', done });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const events = await readEvents(
      { Cookie: cookie },
      (seen) => jobs(seen).some((e) => e.event === 'progress'),
      () => (reported = report()),
    );
    reporting = false;
    await reported;
    expect(events[0]).toMatchObject({ event: 'hello' });
    // Subscribed before hello: the job's first event reached the stream too.
    expect(jobs(events)[0]).toMatchObject({ event: 'added', jobId: 'attn-1', runId: 'run-a' });
    expect(jobs(events).find((e) => e.event === 'progress')).toMatchObject({
      queue: QueueName.Attention,
      jobId: 'attn-1',
      name: 'attention',
      runId: 'run-a',
      progress: { phase: 'upload' },
    });
  });
});

describe('dashboard files and queue board', () => {
  it('redirects / to the dashboard, whose files need no key and stay inside its folder', async () => {
    const home = await t.http.get('/').expect(302);
    expect(home.headers.location).toBe('/ui/');
    const missing = await t.http.get('/ui/no-such-file.js').expect(404);
    expect(missing.body.message).toContain('no-such-file.js');
    expect(missing.headers['content-security-policy']).toContain("script-src 'self'");
    await t.http.get('/ui/..%2Fpackage.json').expect(404);
  });

  it('serves the read-only queue board behind the same guard', async () => {
    await t.http.get('/queues').expect(401);
    const page = await t.http
      .get('/queues')
      .set('Cookie', await signIn())
      .expect(200);
    expect(page.headers['content-security-policy']).toContain("font-src 'self'");
    const queues = await t.http.get('/queues/api/queues').set(AUTH).expect(200);
    const names = (queues.body.queues as { name: string; readOnlyMode: boolean }[]).map((q) => q.name);
    expect(names).toEqual(expect.arrayContaining([QueueName.TrainCpu, QueueName.Attention]));
    expect((queues.body.queues as { readOnlyMode: boolean }[]).every((q) => q.readOnlyMode)).toBe(true);
  });

  it('lists the presets a run can start from', async () => {
    const presets = await t.http.get('/presets').set(AUTH).expect(200);
    expect((presets.body as { name: string }[]).map((p) => p.name)).toContain('fmnist-tiny');
  });
});
