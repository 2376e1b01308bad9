import { expect, test } from '@playwright/test';

// Fine-tuning in the page: data pasted, a short router-only run, charts that fill as steps arrive,
// a summary, and a chat afterwards on the fine-tuned model.
const DATA = Array.from({ length: 12 }, (_, i) => `Expert routing sends each token to ${i % 3 === 0 ? 'two' : 'a few'} experts; a balanced router keeps every expert busy and none idle, step ${i}.`).join('\n');

test('a short router-only run in the page: charts update, the summary names the losses, and the chat still works', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.getByTestId('train-data').fill(DATA);
  await page.getByTestId('train-steps').fill('8');
  await page.getByTestId('train-seqlen').fill('24');
  await page.getByTestId('train-val-every').fill('4');
  await page.getByTestId('train-start').click();
  await expect(page.getByTestId('train-info')).toContainText('training and', { timeout: 60_000 });
  // Charts fill step by step.
  await expect(async () => expect(Number(await page.getByTestId('chart-loss').getAttribute('data-points'))).toBeGreaterThanOrEqual(2)).toPass({ timeout: 120_000 });
  await expect(page.getByTestId('train-summary')).toContainText('after 8 steps', { timeout: 180_000 });
  await expect(page.getByTestId('train-summary')).toContainText('best validation');
  expect(Number(await page.getByTestId('chart-lr').getAttribute('data-points'))).toBe(8);
  await expect(page.getByTestId('chart-load').locator('rect')).not.toHaveCount(0);
  await page.getByTestId('train-charts').scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/train.png', fullPage: true });

  await page.getByLabel('Message').fill('hello');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('reply-token').first()).toBeVisible({ timeout: 120_000 });
  expect(errors).toEqual([]);
});

test('bad training data is refused naming the line, and the panel can start again', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.getByTestId('train-data').fill('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n{"messages": 3}');
  await page.getByTestId('train-start').click();
  await expect(page.getByTestId('train-error')).toContainText('line 2', { timeout: 60_000 });
  await expect(page.getByTestId('train-start')).toBeEnabled();
});
