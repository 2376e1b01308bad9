import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { GGML } from '../../src/engine/quant/gguf-blocks';
import { folderToGguf } from '../unit/io/hf_folder_to_gguf';

// The demo checkpoint converted to one Q8_0 GGUF file (config, weights, tokenizer and chat template
// all in it), picked through the Files… input: it loads, replaces the demo, and chats.
test('a .gguf file picked in the model panel loads and answers', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const bytes = await folderToGguf(join(process.cwd(), 'public', 'models', 'demo'), GGML.Q8_0);
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.locator('input[type=file][accept*=".gguf"]').setInputFiles({ name: 'demo-q8_0.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });
  await expect(page.getByTestId('model-name')).toHaveText('demo-q8_0.gguf', { timeout: 120_000 });
  await expect(page.getByTestId('model-summary')).toContainText('16 per MoE layer, top-2');
  await page.getByLabel('Message').fill('What is 12 + 30?');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('chat-stats')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  await page.screenshot({ path: 'test-results/gguf-chat.png', fullPage: true });
  expect(errors).toEqual([]);
});

// The same file as Q4_0 from a URL (served by the test), requantised to int8 on load.
test('a URL ending in .gguf loads, here requantised to int8', async ({ page }) => {
  const bytes = await folderToGguf(join(process.cwd(), 'public', 'models', 'demo'), GGML.Q4_0);
  await page.route('**/remote/demo-q4_0.gguf', (route) => route.fulfill({ status: 200, contentType: 'application/octet-stream', body: Buffer.from(bytes) }));
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.getByTestId('weight-format').selectOption('int8:32');
  await page.getByLabel('Model URL').fill('http://localhost:4173/remote/demo-q4_0.gguf');
  await page.getByRole('button', { name: 'Load URL' }).click();
  await expect(page.getByTestId('model-name')).toHaveText('http://localhost:4173/remote/demo-q4_0.gguf', { timeout: 120_000 });
  await expect(page.getByTestId('model-summary')).toContainText('int8, group 32');
  await page.getByLabel('Message').fill('Define harbor.');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('chat-stats')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('msg-assistant').last()).toContainText('harbor');
});
