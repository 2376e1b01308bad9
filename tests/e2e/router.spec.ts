import { expect, test, type Page } from '@playwright/test';

async function ready(page: Page, url = '/') {
  await page.goto(url);
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('knob-topk')).toBeVisible();
}

async function ask(page: Page, text: string) {
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByLabel('Message').fill(text);
  await page.getByTestId('send').click();
  await expect(page.getByTestId('chat-stats')).toBeVisible({ timeout: 120_000 });
}

const columnCounts = (page: Page, expert: number) =>
  page.getByTestId('heatmap-conversation').locator(`rect.cell[data-expert="${expert}"]`).evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));

test('changing top-k changes the routing of the next reply', async ({ page }) => {
  await ready(page);
  await page.getByTestId('knob-topk').fill('3');
  await expect(page.getByText('tuned — applies from the next token')).toBeVisible();
  await ask(page, 'What is 2 + 2?');
  await page.getByTestId('reply-token').first().click();
  const first = page.getByTestId('inspector-table').locator('tbody tr').first();
  await expect(first.locator('.expert')).toHaveCount(3);
  await page.screenshot({ path: 'test-results/router-topk3.png', fullPage: true });
});

test('ablating an expert by clicking its column leaves that column at zero', async ({ page }) => {
  await ready(page);
  await ask(page, 'Define river.');
  const before = await columnCounts(page, 7);
  await page.getByTestId('heatmap-conversation').locator('rect.cell[data-expert="7"]').first().click();
  await expect(page.getByTestId('ablated')).toHaveText('#7');
  await ask(page, 'Define river.');
  expect(before.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  expect(await columnCounts(page, 7)).toEqual([0, 0, 0, 0]);
  await page.screenshot({ path: 'test-results/router-ablated.png', fullPage: true });
});

test('a shared link restores every knob in a new page', async ({ page, context }) => {
  await ready(page);
  await page.getByTestId('knob-topk').fill('4');
  await expect(page.getByTestId('knob-topk')).toHaveValue('4');
  await page.getByTestId('knob-temperature').fill('0.7');
  await expect(page.getByTestId('knob-temperature')).toHaveValue('0.7');
  await page.getByTestId('heatmap-conversation').waitFor();
  await page.getByTestId('share').click();
  const link = await page.getByTestId('share-url').inputValue();
  expect(link).toContain('k=4');
  expect(link).toContain('temp=0.7');
  const other = await context.newPage();
  await ready(other, link.replace(/^https?:\/\/[^/]+/, ''));
  await expect(other.getByTestId('knob-topk')).toHaveValue('4');
  await expect(other.getByTestId('knob-temperature')).toHaveValue('0.7');
  await other.screenshot({ path: 'test-results/router-shared.png', fullPage: true });
});

test('a malformed or hostile link is refused with a message naming the field; the page still works', async ({ page }) => {
  await ready(page, '/?v=1&k=abc&model=demo');
  await expect(page.getByTestId('preset-error')).toContainText('"k": not a number');
  await expect(page.getByTestId('knob-topk')).toHaveValue('2');
  await ask(page, 'What is 1 + 1?');
  await expect(page.getByTestId('msg-assistant').last()).toContainText('1 + 1 =');
  await page.screenshot({ path: 'test-results/router-bad-link.png', fullPage: true });
  await ready(page, '/?v=1&model=javascript:alert(1)');
  await expect(page.getByTestId('preset-error')).toContainText('javascript: URLs are not allowed');
  // Valid syntax but impossible for this model (16 experts): the engine names the field.
  await ready(page, '/?v=1&k=17');
  await expect(page.getByTestId('router-error')).toContainText('topK: must be a whole number from 1 to 16');
});

test('A/B compare runs the last prompt under two presets and shows where routing differs', async ({ page }) => {
  await ready(page);
  await ask(page, 'Define mountain.');
  await page.getByTestId('knob-topk').fill('1');
  await expect(page.getByText('tuned — applies from the next token')).toBeVisible();
  await page.getByRole('button', { name: 'Current knobs → A' }).click();
  await expect(page.getByTestId('preset-a')).toContainText('k=1');
  await expect(page.getByTestId('preset-b')).toContainText("checkpoint's own routing");
  await page.getByTestId('run-ab').click();
  await expect(page.getByTestId('heatmap-diff')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('ab-a')).toContainText('mountain');
  await expect(page.getByTestId('ab-b')).toContainText('mountain');
  const diffs = await page.getByTestId('heatmap-diff').locator('rect.diff-cell').evaluateAll((els) => els.map((e) => Math.abs(Number(e.getAttribute('data-diff')))));
  expect(Math.max(...diffs)).toBeGreaterThan(0);
  // The user's own knobs are back after the comparison.
  await expect(page.getByTestId('knob-topk')).toHaveValue('1');
  await page.getByTestId('ab-a').scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/router-ab.png', fullPage: true });
});
