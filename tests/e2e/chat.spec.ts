import { expect, test, type Page } from '@playwright/test';

async function openWithDemo(page: Page) {
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
}

async function ask(page: Page, text: string) {
  await page.getByLabel('Message').fill(text);
  await page.getByTestId('send').click();
  await expect(page.getByTestId('chat-stats')).toBeVisible({ timeout: 120_000 });
}

test('the demo model loads by default and answers; the heatmap and inspector show its routing', async ({ page }, info) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await openWithDemo(page);
  await expect(page.getByTestId('model-summary')).toContainText('16 per MoE layer, top-2');

  await ask(page, 'What is 12 + 30?');
  const reply = page.getByTestId('msg-assistant').last();
  await expect(reply).toContainText('12 + 30 =');
  // Heatmap cells carry the counts: some expert in the first layer got tokens.
  const counts = await page.getByTestId('heatmap-conversation').locator('rect.cell').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));
  expect(counts.length).toBe(4 * 16);
  expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  await expect(page.getByTestId('balance-table').locator('tbody tr')).toHaveCount(4);
  await page.screenshot({ path: 'test-results/chat-arithmetic.png', fullPage: true });

  await page.getByTestId('reply-token').first().click();
  await expect(page.getByTestId('inspector-table').locator('tbody tr')).toHaveCount(4);
  await expect(page.getByTestId('inspector-table')).toContainText('#');
  await page.screenshot({ path: 'test-results/chat-inspector.png', fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: 'test-results/chat-inspector-dark.png', fullPage: true });
  expect(errors).toEqual([]);
  void info;
});

test('each domain gets an answer of its own kind', async ({ page }) => {
  await openWithDemo(page);
  const cases: Array<[string, RegExp]> = [
    ['Define harbor.', /^\s*harbor:/],
    ['请念一首诗。', /[\u4e00-\u9fff]{4,}/],
    ['Write Python code.', /def \w+\(/],
    ['What is 7 + 5?', /7 \+ 5 = \d+/],
    ['Say something wise.', /[a-z]+ [a-z]+ [a-z]+/i],
  ];
  for (const [prompt, want] of cases) {
    await page.getByRole('button', { name: 'Clear' }).click();
    await ask(page, prompt);
    const text = (await page.getByTestId('msg-assistant').last().innerText()).replace(/^model\s*/i, '');
    expect(text, `reply to ${prompt}`).toMatch(want);
  }
  await page.screenshot({ path: 'test-results/chat-domains.png', fullPage: true });
});

test('a broken model URL is reported and the demo model stays usable', async ({ page }) => {
  await openWithDemo(page);
  await page.getByLabel('Model URL').fill('http://localhost:4173/no-such-model/');
  await page.getByRole('button', { name: 'Load URL' }).click();
  await expect(page.getByTestId('model-error')).toContainText('config.json');
  await expect(page.getByTestId('model-name')).toContainText('demo');
  await ask(page, 'What is 3 + 4?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('3 + 4 =');
});

test('the demo model reloads with int4 weights and still answers', async ({ page }) => {
  await openWithDemo(page);
  await page.getByTestId('weight-format').selectOption('int4:32');
  await page.getByRole('button', { name: 'Built-in demo' }).click();
  await expect(page.getByTestId('model-summary')).toContainText('int4, group 32', { timeout: 120_000 });
  await ask(page, 'What is 12 + 30?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
});

test('a load in progress can be cancelled; the loaded model stays', async ({ page }) => {
  await openWithDemo(page);
  await page.route('**/models/demo/model.safetensors', async (route) => {
    await new Promise((r) => setTimeout(r, 4000));
    await route.continue().catch(() => undefined);
  });
  await page.getByTestId('weight-format').selectOption('int8:32');
  await page.getByRole('button', { name: 'Built-in demo' }).click();
  await page.getByTestId('cancel-load').click();
  await expect(page.getByTestId('model-error')).toContainText('cancelled');
  await expect(page.getByTestId('model-summary')).toContainText('(f32)');
  await ask(page, 'What is 5 + 5?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('5 + 5 =');
});

test('a second load of the same checkpoint comes from the OPFS cache, download and quantisation skipped', async ({ page }) => {
  await openWithDemo(page);
  await page.getByTestId('weight-format').selectOption('int4:32');
  await page.getByRole('button', { name: 'Built-in demo' }).click();
  await expect(page.getByTestId('model-summary')).toContainText('int4, group 32', { timeout: 120_000 });
  // A new page in the same browser profile: files and int4 matrices are cached now.
  await page.reload();
  await expect(page.getByTestId('load-time')).toContainText('from the browser cache: 4 files', { timeout: 120_000 });
  await page.getByTestId('weight-format').selectOption('int4:32');
  await page.getByRole('button', { name: 'Built-in demo' }).click();
  await expect(page.getByTestId('load-time')).toContainText(/4 files, [1-9]\d* quantised matrices/, { timeout: 120_000 });
  await ask(page, 'What is 2 + 3?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('2 + 3 =');
});
