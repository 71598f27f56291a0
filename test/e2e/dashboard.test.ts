/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against the real
 * API, a worker process, Redis and the embedded S3 server: sign in, start a tiny run and watch it
 * train, read a finished run's k-NN history and attention gallery, download a checkpoint, and see
 * the API's 400 reasons and 401 handling. Screenshots of the main pages go to test-artifacts/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, buildWorker } from './helpers/build';
import { TINY_CONFIG, startStack, waitFor, type E2EStack } from './helpers/stack';
import type { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(180_000);

const API_KEY = 'dashboard-e2e-key-0123456789';
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
/** 32 images, batches of 8: 4 steps an epoch; 6 epochs in shards of 6 steps. */
const RUN_CONFIG = { ...TINY_CONFIG, train: { ...TINY_CONFIG.train, epochs: 6, stepsPerShard: 6 } };

let stack: E2EStack;
let worker: WorkerProcess;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  buildWorker();
  execFileSync(process.execPath, [path.join(ROOT, 'apps/web/build.mjs')], { stdio: 'pipe' });
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack({ apiKeys: [API_KEY] });
  worker = stack.startWorker('dashboard');
  [browser] = await Promise.all([
    chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking'],
    }),
    worker.ready(),
  ]);
  await stack.importDataset('fmnist', 32);
  context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

async function screenshot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The number of points a chart draws (the Chart component writes it on its element). */
async function chartPoints(name: string): Promise<number> {
  return Number((await page.getAttribute(`[data-chart="${name}"]`, 'data-points')) ?? -1);
}

test('a wrong key is refused at sign-in; the right one opens the runs table', async () => {
  await page.goto(`${stack.api.url}/`);
  await page.fill('input[name="apiKey"]', 'not-the-key');
  await page.click('button[type="submit"]');
  await page.getByRole('alert').getByText('not an API key').waitFor();

  await page.fill('input[name="apiKey"]', API_KEY);
  await page.click('button[type="submit"]');
  await page.getByRole('heading', { name: 'Runs' }).waitFor();
  await page.locator('header .live.on').waitFor();
  // The key is in no URL and not readable by scripts: only the HttpOnly session cookie is kept.
  expect(page.url()).not.toContain(API_KEY);
  const cookies = await context.cookies();
  expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([['dinoq_session', true, 'Strict']]);
  expect(cookies[0].value).not.toContain(API_KEY);
  expect(
    await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie),
  ).toBe('');
});

test("a bad config shows the API's 400 reasons", async () => {
  await page.getByRole('button', { name: 'Start a run…' }).click();
  await page.selectOption('select[name="dataset"]', 'fmnist');
  await page.fill(
    'textarea[name="config"]',
    JSON.stringify({ train: { batchSize: -1 }, model: { depth: 0 } }),
  );
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  const alert = page.locator('.start-run [role="alert"]');
  await alert.waitFor();
  expect(await alert.textContent()).toMatch(/^400: /);
  const reasons = await alert.locator('.reasons li').allTextContents();
  expect(reasons.some((reason) => reason.startsWith('train.batchSize'))).toBe(true);
  expect(reasons.some((reason) => reason.startsWith('model.depth'))).toBe(true);
});

test('a run started from the form trains live: progress and the loss chart move without a reload', async () => {
  await page.fill('input[name="runId"]', 'ui-run');
  await page.selectOption('select[name="device"]', 'cpu');
  await page.fill('textarea[name="config"]', JSON.stringify(RUN_CONFIG));
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.locator('.start-run .ok a', { hasText: 'ui-run' }).waitFor();
  const row = page.locator('tr[data-run="ui-run"]');
  await row.waitFor();

  await row.getByRole('link', { name: 'ui-run' }).click();
  await page.locator('[data-chart="loss"]').waitFor();
  const loadedWith = await chartPoints('loss');
  const total = 24;
  // New points arrive through the event stream (progress and commits), not through navigation.
  await waitFor(
    async () => (await chartPoints('loss')) > loadedWith,
    90_000,
    'a new point on the loss chart',
  );
  await waitFor(
    async () => /^step [1-9]/.test((await page.locator('.summary .step').textContent()) ?? ''),
    30_000,
    'the progress to move',
  );
  await page.locator('h2 .status.completed').waitFor({ timeout: 120_000 });
  await waitFor(async () => (await chartPoints('loss')) === total, 10_000, 'every step on the loss chart');
  expect(await page.locator('.summary .step').textContent()).toBe(`step ${total} / ${total}`);
  for (const chart of [
    'teacherEntropy',
    'klTeacherStudent',
    'lr',
    'weightDecay',
    'momentum',
    'teacherTemp',
    'imagesPerSecond',
    'dataWaitMs',
  ])
    expect(await chartPoints(chart)).toBe(total);
  // ln K is drawn beside the teacher entropy (K = head.outDim).
  await page.locator('[data-chart="teacherEntropy"]').getByText('ln K (K = 64)').waitFor();
  await screenshot('run');
});

test("a finished run's k-NN history and attention gallery appear as their jobs complete", async () => {
  const evaluation = await stack.http('POST', '/runs/ui-run/evaluations', {
    kinds: ['knn'],
    knn: { ks: [1, 5] },
  });
  expect(evaluation.status).toBe(202);
  const exported = await stack.http<{ exportId: string }>('POST', '/runs/ui-run/attention', {
    images: { split: 'test', indices: [0, 1] },
  });
  expect(exported.status).toBe(202);

  await page.locator('[data-chart="knn"]').waitFor({ timeout: 90_000 });
  expect(await chartPoints('knn')).toBe(1);
  expect(await page.locator('table.evaluations .status.completed').count()).toBe(1);
  // Each score beside the random-init and raw-pixel baselines of the same protocol.
  const scores = await page.locator('table.evaluations td.scores').first().textContent();
  expect(scores).toMatch(/^k-NN k=1 top-1 [\d.]+ % \(random [\d.]+ %, pixels [\d.]+ %\)k-NN k=5 top-1 /);

  // The runs table shows the finished run with its newest k-NN score.
  await page.goto(`${stack.api.url}/ui/#/runs`);
  const row = page.locator('tr[data-run="ui-run"]');
  await row.locator('.status.completed').waitFor();
  expect(await row.locator('.step').textContent()).toBe('24 / 24');
  await row.locator('td', { hasText: '%' }).waitFor();
  await screenshot('runs');
  await row.getByRole('link', { name: 'ui-run' }).click();

  const link = page.locator('table.exports a', { hasText: exported.body.exportId });
  await link.waitFor({ timeout: 90_000 });
  await link.click();
  const images = page.locator('.image-maps');
  await waitFor(async () => (await images.count()) === 2, 30_000, 'both images of the export');
  // Input, mean, mean mask, overlay, and heatmap, mask and overlay of each of the 2 heads.
  expect(await images.first().locator('img').count()).toBe(4 + 3 * 2);
  // The PNGs load from storage through their presigned links.
  await waitFor(
    () =>
      page
        .locator('.image-maps img')
        .evaluateAll((elements) =>
          (elements as unknown as { complete: boolean; naturalWidth: number }[]).every(
            (img) => img.complete && img.naturalWidth > 0,
          ),
        ),
    30_000,
    'every map to load',
  );
  await screenshot('attention');
});

test('a checkpoint link downloads the checkpoint file', async () => {
  await page.goto(`${stack.api.url}/ui/#/runs/ui-run`);
  const link = page.locator('tr[data-step="24"] a.download', { hasText: 'teacher.safetensors' });
  await link.waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const file = await download.path();
  const stored = await stack.store.getBytes('runs/ui-run/checkpoints/000000024/teacher.safetensors');
  expect(readFileSync(file).equals(Buffer.from(stored))).toBe(true);
});

test('the queues page shows the worker and the queue board', async () => {
  await page.goto(`${stack.api.url}/ui/#/queues`);
  await page.locator('table.workers td', { hasText: 'wasm' }).first().waitFor();
  const board = page.frameLocator('iframe.board');
  await board.getByText('train-cpu').first().waitFor({ timeout: 30_000 });
  await screenshot('queues');
});

test('an ended session sends the page back to sign-in', async () => {
  await page.goto(`${stack.api.url}/ui/#/runs`);
  await page.getByRole('heading', { name: 'Runs' }).waitFor();
  // What a revoked key or an expired cookie looks like to the page: the next request answers 401.
  await context.clearCookies();
  // Any request now answers 401: opening a run makes one, if nothing else did first.
  await page.goto(`${stack.api.url}/ui/#/runs/ui-run`);
  await page.getByText('Your session has ended').waitFor();
  await page.locator('input[name="apiKey"]').waitFor();
});
