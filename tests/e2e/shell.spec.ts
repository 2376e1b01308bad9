import { expect, test } from '@playwright/test';

test('the page finds the WebGPU adapter and its kernel self-test passes', async ({ page }, info) => {
  const consoleErrors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(e.message));

  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'MoE Playground' })).toBeVisible();
  await expect(page.getByTestId('gpu-problem')).toHaveCount(0);
  await expect(page.getByTestId('adapter-name')).toContainText(/swiftshader/i);
  await expect(page.getByTestId('selftest-status')).toHaveText('passed');
  const rows = page.getByTestId('selftest-table').locator('tbody tr');
  await expect(rows).toHaveCount(5);
  await expect(page.getByTestId('selftest-table').locator('tr.bad')).toHaveCount(0);

  await page.screenshot({ path: info.outputPath('shell.png'), fullPage: true });
  await page.screenshot({ path: 'test-results/shell.png', fullPage: true });
  expect(consoleErrors).toEqual([]);
});

test('without WebGPU the page says so and what to do', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Hide WebGPU from the page and its workers before any script runs.
  await page.addInitScript(() => {
    Object.defineProperty(Object.getPrototypeOf(navigator), 'gpu', { get: () => undefined });
  });
  await page.route('**/assets/engine.worker-*.js', async (route) => {
    const res = await route.fetch();
    const body = `Object.defineProperty(Object.getPrototypeOf(navigator), 'gpu', { get: () => undefined });\n${await res.text()}`;
    await route.fulfill({ response: res, body });
  });
  await page.goto('/');
  const problem = page.getByTestId('gpu-problem');
  await expect(problem).toContainText('no WebGPU');
  await expect(problem).toContainText('--enable-unsafe-webgpu');
  await context.close();
});
