import { expect, test, type Page } from '@playwright/test';

// Test hooks (window.moeDebug: lose the device, fake a small memory) exist only when this flag is
// set before the page's scripts run; a link cannot set it.
test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    (globalThis as { __MOE_TEST_HOOKS__?: boolean }).__MOE_TEST_HOOKS__ = true;
  });
});

interface Debug {
  loseDevice(): void;
  setMemory(bytes: number | null): void;
  failAllocation(after: number): void;
  refreshMemory(): void;
}
const debug = (page: Page, call: (d: Debug) => void) => page.evaluate(`(${call.toString()})(globalThis.moeDebug)`);

async function openWithDemo(page: Page) {
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
}

async function ask(page: Page, text: string) {
  await page.getByLabel('Message').fill(text);
  await page.getByTestId('send').click();
  await expect(page.getByTestId('send')).toBeVisible({ timeout: 120_000 });
}

/** A record of the page's IndexedDB store (state/persist.ts), read with the raw API. */
function readStore(page: Page, key: string | null): Promise<unknown> {
  return page.evaluate(
    (key) =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('moe-playground');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction('state', 'readonly').objectStore('state');
          const req = key === null ? tx.getAllKeys() : tx.get(key);
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error);
        };
      }),
    key,
  );
}

function writeStore(page: Page, key: string, value: unknown): Promise<void> {
  return page.evaluate(
    ({ key, value }) =>
      new Promise<void>((resolve, reject) => {
        const open = indexedDB.open('moe-playground');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction('state', 'readwrite');
          tx.objectStore('state').put(value, key);
          tx.oncomplete = () => resolve();
          tx.onerror = () => reject(tx.error);
        };
      }),
    { key, value },
  );
}

test('a lost GPU device is replaced, the model reloaded, and the chat and router knobs go on', async ({ page }) => {
  await openWithDemo(page);
  await ask(page, 'What is 12 + 30?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  await page.getByTestId('knob-topk').fill('3');
  await expect(page.getByText('tuned — applies from the next token')).toBeVisible();
  await expect(page.getByTestId('live-buffers')).toBeVisible();
  const before = Number((await page.getByTestId('live-buffers').innerText()).split(' ')[0]);

  await debug(page, (d) => d.loseDevice());
  await expect(page.getByTestId('notice-device')).toContainText('The GPU device was lost');
  await page.screenshot({ path: 'test-results/device-lost.png', fullPage: true });
  await expect(page.getByTestId('notice-device')).toContainText('Your conversation and router settings are kept', { timeout: 120_000 });
  await expect(page.getByTestId('model-summary')).toContainText('16 per MoE layer, top-2');
  // Nothing the user had is gone: the exchange and the tuned knob.
  await expect(page.getByTestId('msg-user')).toHaveText(['You' + 'What is 12 + 30?']);
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  await expect(page.getByTestId('knob-topk')).toHaveValue('3');
  await page.screenshot({ path: 'test-results/device-restored.png', fullPage: true });

  // The new device answers, with the restored knob in force (3 experts per token).
  await ask(page, 'What is 2 + 3?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('2 + 3 =');
  await page.getByTestId('reply-token').first().click();
  await expect(page.getByTestId('inspector-table').locator('tbody tr').first().locator('.expert')).toHaveCount(3);
  const after = Number((await page.getByTestId('live-buffers').innerText()).split(' ')[0]);
  expect(after).toBeGreaterThan(0);
  expect(after).toBeLessThanOrEqual(before);
});

test('a device lost in the middle of a reply keeps the conversation and recovers', async ({ page }) => {
  await openWithDemo(page);
  await page.getByLabel('Message').fill('Write Python code.');
  await page.getByTestId('send').click();
  // The worker takes messages in order: the loss lands during the first forward pass.
  await debug(page, (d) => d.loseDevice());
  await expect(page.getByRole('alert').filter({ hasText: 'Engine errors' })).toContainText('The GPU device was lost while generating', { timeout: 120_000 });
  await expect(page.getByTestId('notice-device')).toContainText('Your conversation and router settings are kept', { timeout: 120_000 });
  await expect(page.getByTestId('msg-user')).toContainText(['Write Python code.']);
  await ask(page, 'Define harbor.');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('harbor');
});

test('the conversation and router knobs survive a reload', async ({ page }) => {
  await openWithDemo(page);
  await ask(page, 'Define harbor.');
  const reply = (await page.getByTestId('msg-assistant').last().innerText()).replace(/^model\s*/i, '');
  expect(reply).toContain('harbor');
  await page.getByTestId('knob-topk').fill('3');
  await expect(page.getByText('tuned — applies from the next token')).toBeVisible();
  await expect.poll(async () => ((await readStore(page, 'router')) as { query?: string } | undefined)?.query).toContain('k=3');
  await expect.poll(async () => ((await readStore(page, 'chat')) as { messages?: unknown[] } | undefined)?.messages?.length).toBe(2);

  await page.reload();
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('msg-user')).toContainText(['Define harbor.']);
  await expect(page.getByTestId('msg-assistant')).toContainText([reply.trim()]);
  await expect(page.getByTestId('knob-topk')).toHaveValue('3');
  await page.screenshot({ path: 'test-results/chat-restored.png', fullPage: true });
  // The restored conversation goes on.
  await ask(page, 'What is 1 + 1?');
  await expect(page.getByTestId('msg-user')).toHaveCount(2);
  await expect(page.getByTestId('msg-assistant').last()).toContainText('1 + 1 =');
});

test('a corrupt saved state is set aside with a message, and the page works', async ({ page }) => {
  await openWithDemo(page);
  const hostile = { version: 1, savedAt: 0, messages: [{ role: 'hacker', content: '<img src=x onerror="document.title=\'pwned\'">' }] };
  await writeStore(page, 'chat', hostile);
  await writeStore(page, 'router', 'not a record');
  await page.reload();
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  const notice = page.getByTestId('notice-storage');
  await expect(notice).toContainText('The saved conversation could not be used (messages.0.role: must be system, user or assistant)');
  await expect(notice).toContainText('set aside in the browser\'s storage as "corrupt/chat/');
  await expect(notice).toContainText('The saved router settings could not be used');
  await expect(page.getByTestId('msg-user')).toHaveCount(0);
  await page.screenshot({ path: 'test-results/storage-set-aside.png', fullPage: true });
  const keys = (await readStore(page, null)) as string[];
  const aside = keys.find((k) => k.startsWith('corrupt/chat/'));
  expect(aside).toBeTruthy();
  expect(await readStore(page, aside!)).toEqual(hostile);
  expect(await page.title()).toBe('MoE Playground');
  await ask(page, 'What is 4 + 4?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('4 + 4 =');
});

test('a device lost mid-training: the run goes on from its checkpoint; a corrupt saved run is set aside', async ({ page }) => {
  await openWithDemo(page);
  const data = Array.from({ length: 8 }, (_, i) => `Routing line ${i}: experts share the tokens evenly.`).join('\n');
  await page.getByTestId('train-data').fill(data);
  await page.getByTestId('train-steps').fill('8');
  await page.getByTestId('train-seqlen').fill('16');
  await page.getByTestId('train-start').click();
  await expect(page.getByTestId('train-checkpoint')).toContainText(/at step [2-7]/, { timeout: 120_000 });
  await debug(page, (d) => d.loseDevice());
  await expect(page.getByTestId('notice-device')).toContainText('The GPU device was lost', { timeout: 60_000 });
  await expect(page.getByTestId('train-resumed')).toContainText(/After the GPU was lost, the run went on from its checkpoint at step [1-7]/, { timeout: 120_000 });
  await expect(page.getByTestId('train-summary')).toContainText('after 8 steps', { timeout: 180_000 });
  expect(Number(await page.getByTestId('chart-lr').getAttribute('data-points'))).toBe(8);
  await expect(page.getByTestId('train-data')).toHaveValue(data);
  await page.screenshot({ path: 'test-results/train-device-lost.png', fullPage: true });

  // A stored run whose bytes were damaged: reported, kept aside, and the panel still trains.
  await page.evaluate(async () => {
    const d = await (await navigator.storage.getDirectory()).getDirectoryHandle('moe-playground-train', { create: true });
    const w = await (await d.getFileHandle('run.safetensors', { create: true })).createWritable();
    await w.write(new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123, 34]));
    await w.close();
  });
  await page.reload();
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('train-saved-problem')).toContainText('The saved training run could not be used (not a training checkpoint');
  await expect(page.getByTestId('train-saved-problem')).toContainText('set aside in the browser\'s storage as "moe-playground-train/corrupt-');
  await expect(page.getByTestId('train-saved')).toHaveCount(0);
});

test('a checkpoint too big for the device is refused before upload, naming a format that fits', async ({ page }) => {
  await openWithDemo(page);
  await expect(page.getByTestId('live-buffers')).toBeVisible();
  const before = await page.getByTestId('live-buffers').innerText();
  await debug(page, (d) => d.setMemory(20 * 2 ** 20));
  await page.getByRole('button', { name: 'Built-in demo' }).click();
  const err = page.getByTestId('model-error');
  await expect(err).toContainText(/This checkpoint needs [\d.]+ MiB on the GPU as f32 \(weights [\d.]+ MiB, KV cache and working buffers [\d.]+ MiB\): that is more than the 20\.0 MiB this device has/);
  await expect(err).toContainText(/As int8 \(group 32\) it needs [\d.]+ MiB and fits/);
  await expect(err).toContainText('Nothing was uploaded');
  await expect(page.getByTestId('model-summary')).toContainText('(f32)');
  await debug(page, (d) => d.refreshMemory());
  await expect(page.getByTestId('live-buffers')).toHaveText(before);
  await page.screenshot({ path: 'test-results/too-big.png', fullPage: true });
  // The suggested format loads within the same limit.
  await page.getByTestId('weight-format').selectOption('int8:32');
  await page.getByRole('button', { name: 'Built-in demo' }).click();
  await expect(page.getByTestId('model-summary')).toContainText('int8, group 32', { timeout: 120_000 });
});

test('a conversation longer than the context slides: the oldest turns are left out and the user is told', async ({ page }) => {
  await openWithDemo(page);
  // Short replies: the test is about what the prompt keeps, and each reply token costs a forward pass here.
  await page.getByText('Sampling').click();
  await page.getByLabel('max new tokens').fill('6');
  // Several hundred tokens each with the demo tokenizer: three of them pass the 1024-token context.
  const long = (n: number) => `Define harbor. ${'river mountain harbor '.repeat(110)} (${n})`;
  for (let i = 1; i <= 3; i++) await ask(page, long(i));
  // Whole exchanges go, oldest first (user + reply, so an even count), and the last message is answered.
  await expect(page.getByTestId('context-note')).toContainText(/longer than the model's context \(1024 tokens\): the model saw it without its first [24] messages\./);
  await expect(page.getByTestId('msg-user')).toHaveCount(3);
  await expect(page.getByTestId('chat-stats')).toContainText(/[1-9]\d* tokens/);
  await page.screenshot({ path: 'test-results/context-slide.png', fullPage: true });
  // A single message over the context is refused with the numbers.
  await page.getByRole('button', { name: 'Clear' }).click();
  await ask(page, 'harbor '.repeat(1500));
  await expect(page.getByRole('alert').filter({ hasText: 'Engine errors' })).toContainText(/The last message is too long for this model: with it the prompt is \d+ tokens/);
});

test('the page runs under a strict Content-Security-Policy: no inline script, no eval, no other plain-http host', async ({ page }) => {
  const violations: string[] = [];
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && violations.push(m.text()));
  const res = await page.goto('/');
  // The header covers the page and the worker; the meta tag holds on hosts that send no headers.
  const header = res!.headers()['content-security-policy'] ?? '';
  expect(header).toContain("script-src 'self'");
  expect(header).toContain("connect-src 'self' https:");
  expect(header).toContain("frame-ancestors 'none'");
  await expect(page.locator('meta[http-equiv="Content-Security-Policy"]')).toHaveAttribute('content', /script-src 'self' 'wasm-unsafe-eval'; style-src 'self'/);
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await ask(page, 'What is 12 + 30?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  // Running the whole app (worker, model download, GPU, charts) needs nothing the policy forbids.
  expect(violations).toEqual([]);
  // Code run through the DevTools protocol (page.evaluate) is exempt from CSP, so the probes run
  // as the page's own code: a same-origin script file, which script-src 'self' lets in.
  await page.route('**/csp-probe.js', (route) =>
    route.fulfill({
      contentType: 'text/javascript',
      body: `
        const out = {};
        try { out.eval = String((0, eval)('1 + 1')); } catch (e) { out.eval = e.name; }
        try { out.function = String(new Function('return 2')()); } catch (e) { out.function = e.name; }
        const s = document.createElement('script');
        s.textContent = 'document.title = "inline ran"';
        document.head.append(s);
        // 127.0.0.1 is another origin than localhost, over plain http.
        fetch('http://127.0.0.1:4173/favicon.svg').then(() => 'ran', (e) => e.name).then((f) => {
          out.fetch = f;
          out.title = document.title;
          document.body.dataset.probe = JSON.stringify(out);
        });`,
    }),
  );
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.src = '/csp-probe.js';
    document.head.append(s);
  });
  await expect(page.locator('body')).toHaveAttribute('data-probe', /fetch/);
  const tried = JSON.parse((await page.locator('body').getAttribute('data-probe'))!) as Record<string, string>;
  expect(tried).toEqual({ eval: 'EvalError', function: 'EvalError', title: 'MoE Playground', fetch: 'TypeError' });
  expect(violations.length).toBeGreaterThanOrEqual(3);
});

test('model URLs: plain http to another host is refused with the reason; a link to another origin asks first', async ({ page }) => {
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await openWithDemo(page);
  await page.getByLabel('Model URL').fill('http://127.0.0.1:4173/models/demo/');
  await page.getByRole('button', { name: 'Load URL' }).click();
  await expect(page.getByTestId('model-error')).toContainText("Plain http:// is only allowed for this page's own server (http://localhost:4173); use https:// for 127.0.0.1:4173");
  await expect(page.getByTestId('model-summary')).toContainText('(f32)');

  // A shared link naming a model elsewhere: nothing is fetched from there until the user agrees.
  await page.goto('/?v=1&model=https://models.example.invalid/m/&k=3');
  await expect(page.getByTestId('confirm-model')).toContainText('https://models.example.invalid/m/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.screenshot({ path: 'test-results/link-confirm.png', fullPage: true });
  const elsewhere = () => requests.filter((u) => new URL(u).hostname === 'models.example.invalid');
  expect(elsewhere()).toEqual([]);
  await page.getByRole('button', { name: 'No, keep this model' }).click();
  await expect(page.getByTestId('confirm-model')).toHaveCount(0);
  await expect(page.getByTestId('knob-topk')).toHaveValue('2');
  expect(elsewhere()).toEqual([]);
  // Agreeing loads it (here it does not exist: the error names it, and the demo stays).
  await page.goto('/?v=1&model=https://models.example.invalid/m/&k=3');
  await page.getByRole('button', { name: 'Load it' }).click();
  await expect(page.getByTestId('model-error')).toContainText('https://models.example.invalid/m/config.json', { timeout: 120_000 });
  expect(elsewhere().length).toBeGreaterThan(0);
});

test('model-provided strings render as text: a reply holding markup, a file name of markup in an error', async ({ page }) => {
  const HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><b>bold</b>';
  await openWithDemo(page);
  // A conversation whose reply holds markup, as a model could produce it.
  await writeStore(page, 'chat', { version: 1, savedAt: 0, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: HOSTILE }] });
  await page.reload();
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('msg-assistant')).toContainText(HOSTILE);
  // A checkpoint file whose name is markup: refused, and the name shown as text.
  await page.locator('input[type=file][accept*=".gguf"]').setInputFiles({ name: `${HOSTILE}.gguf`, mimeType: 'application/octet-stream', buffer: Buffer.from('not a gguf file at all') });
  await expect(page.getByTestId('model-error')).toContainText(`${HOSTILE}.gguf`);
  expect(await page.locator('main img, main b').count()).toBe(0);
  expect(await page.title()).toBe('MoE Playground');
  await page.screenshot({ path: 'test-results/markup-as-text.png', fullPage: true });
});

test('running out of GPU memory mid-reply frees the working buffers, keeps the chat, and the next reply works', async ({ page }) => {
  await openWithDemo(page);
  await ask(page, 'What is 12 + 30?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  const regenerate = async () => {
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await expect(page.getByTestId('send')).toBeVisible({ timeout: 120_000 });
  };
  // The same prompt again: every buffer this conversation needs exists now.
  await regenerate();
  await debug(page, (d) => d.refreshMemory());
  const before = await page.getByTestId('live-buffers').innerText();
  // The third generation step's allocation "fails" (browsers cannot be run out of memory on demand).
  await debug(page, (d) => d.failAllocation(3));
  await regenerate();
  const errors = page.getByRole('alert').filter({ hasText: 'Engine errors' });
  await expect(errors).toContainText('The GPU ran out of memory while generating (injected by a test: allocation failed). The conversation is kept');
  await expect(errors).toContainText("the model's working buffers were freed");
  await expect(page.getByTestId('msg-user')).toHaveText(['You' + 'What is 12 + 30?']);
  await page.screenshot({ path: 'test-results/oom-generation.png', fullPage: true });
  await regenerate();
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  // Rebuilt, not leaked: the same buffers as before the failure.
  await debug(page, (d) => d.refreshMemory());
  await expect(page.getByTestId('live-buffers')).toHaveText(before);
});

test('saved router knobs that no longer parse are set aside; a device lost over and over stops the retries with advice', async ({ page }) => {
  await openWithDemo(page);
  const name = await page.getByTestId('model-name').innerText();
  await writeStore(page, 'router', { version: 1, savedAt: 0, model: name, query: '?v=1&k=abc' });
  await page.reload();
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('notice-storage')).toContainText('The saved router settings could not be used (Bad link parameter "k": not a number)');
  await expect(page.getByTestId('knob-topk')).toHaveValue('2');

  // Three losses within a minute are recovered from; the fourth is not retried.
  for (let i = 1; i <= 3; i++) {
    await debug(page, (d) => d.loseDevice());
    await expect(page.getByTestId('notice-device')).toContainText('Your conversation and router settings are kept', { timeout: 120_000 });
    await expect(page.getByTestId('model-summary')).toBeVisible();
    // Dismissed, so the next notice is a fresh one.
    await page.getByTestId('notice-device').getByRole('button', { name: 'Dismiss' }).click();
  }
  await debug(page, (d) => d.loseDevice());
  await expect(page.getByTestId('notice-device')).toContainText('The device was lost 4 times within a minute, so the engine stopped retrying');
  await expect(page.getByTestId('notice-device')).toContainText('reload the page (your conversation is saved)');
  await expect(page.getByTestId('gpu-problem')).toContainText('Reload the page to start a new device');
});
