import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { GGML } from '../../src/engine/quant/gguf-blocks';
import { folderToGguf } from '../unit/io/hf_folder_to_gguf';

// The demo checkpoint converted to one Q8_0 GGUF file (config, weights, tokenizer and chat template
// all in it), dropped on the model panel as a person drags it from their file manager: it loads,
// replaces the demo, and chats. (The Files… input goes through the same load path; the ONNX test
// picks its files there.)
test('a .gguf file dropped on the model panel loads and answers', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const bytes = await folderToGguf(join(process.cwd(), 'public', 'models', 'demo'), GGML.Q8_0);
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  // A real drag carries a DataTransfer holding File objects; build the same one inside the page.
  const dataTransfer = await page.evaluateHandle(async (b64) => {
    const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bin], 'demo-q8_0.gguf', { type: 'application/octet-stream' }));
    return dt;
  }, Buffer.from(bytes).toString('base64'));
  const panel = page.locator('section.model');
  await panel.dispatchEvent('dragenter', { dataTransfer });
  await panel.dispatchEvent('dragover', { dataTransfer });
  await expect(panel).toHaveClass(/dragging/);
  await panel.dispatchEvent('drop', { dataTransfer });
  await expect(panel).not.toHaveClass(/dragging/);
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
