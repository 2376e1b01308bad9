import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { exportOnnx } from '../../src/engine/onnx/export';

// The demo checkpoint (a tiny qwen2_moe with a real tokenizer, so its replies can be checked)
// exported to an .onnx in the test, then picked through the Files… input together with its
// tokenizer files: it runs on onnxruntime-web's WebGPU EP, answers as our engine does, and its
// routing (from the graph's router_logits outputs) fills the heatmap. Router knobs are refused.
test('an .onnx picked with its tokenizer files runs on onnxruntime-web, chats, and fills the routing heatmap', async ({ page }, info) => {
  const errors: string[] = [];
  const csp: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && csp.push(m.text()));
  const demo = join(process.cwd(), 'public', 'models', 'demo');
  const ck = await openCheckpoint(await folderSources(demo));
  const { bytes } = await exportOnnx(ck.spec, ck.slots, ck.reader, { contextLength: 512, parameters: ck.parameters });
  const onnxPath = info.outputPath('demo.onnx');
  await writeFile(onnxPath, bytes);

  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('model-backend')).toContainText('WebGPU kernels');
  await page.locator('input[type=file][accept*=".onnx"]').setInputFiles([onnxPath, join(demo, 'tokenizer.json'), join(demo, 'tokenizer_config.json')]);
  await expect(page.getByTestId('model-name')).toHaveText('demo.onnx', { timeout: 120_000 });
  await expect(page.getByTestId('model-backend')).toContainText('onnxruntime-web');
  await expect(page.getByTestId('model-summary')).toContainText('16 per MoE layer, top-2');
  await expect(page.getByTestId('router-fixed')).toContainText('routing is computed inside the ONNX graph');

  await page.getByLabel('Message').fill('What is 12 + 30?');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('chat-stats')).toBeVisible({ timeout: 120_000 });
  // The same answer our own kernels give (chat.spec.ts): greedy decoding on the same weights.
  await expect(page.getByTestId('msg-assistant').last()).toContainText('12 + 30 =');
  const counts = await page.getByTestId('heatmap-conversation').locator('rect.cell').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));
  expect(counts.length).toBe(4 * 16);
  // Every token of prompt and reply is routed to top-2 experts in each of the 4 MoE layers.
  const tokens = await page.getByTestId('reply-token').count();
  expect(tokens).toBeGreaterThan(0);
  const perLayer = counts.reduce((a, b) => a + b, 0) / 4;
  expect(perLayer % 2).toBe(0);
  expect(perLayer / 2).toBeGreaterThan(tokens);
  await page.getByTestId('reply-token').first().click();
  await expect(page.getByTestId('inspector-table').locator('tbody tr')).toHaveCount(4);
  await page.screenshot({ path: 'test-results/onnx-chat.png', fullPage: true });

  // The graph's routing cannot be changed: the knobs are disabled, saying why.
  await expect(page.getByTestId('router-knobs-fixed')).toContainText('onnxruntime-web');
  await expect(page.getByTestId('knob-topk')).toBeDisabled();
  await expect(page.getByTestId('knob-topk')).toHaveValue('2');
  await page.screenshot({ path: 'test-results/onnx-router-refused.png', fullPage: true });
  expect(errors).toEqual([]);
  expect(csp).toEqual([]);
});

// An .onnx by URL: its tokenizer files are fetched from beside it. Then a reply is stopped early.
test('a URL ending in .onnx loads with the tokenizer files beside it; Stop ends the reply', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const demo = join(process.cwd(), 'public', 'models', 'demo');
  const ck = await openCheckpoint(await folderSources(demo));
  const { bytes } = await exportOnnx(ck.spec, ck.slots, ck.reader, { contextLength: 256, parameters: ck.parameters });
  await page.route('**/remote/onnx/demo.onnx', (route) => route.fulfill({ status: 200, contentType: 'application/octet-stream', body: Buffer.from(bytes) }));
  await page.route('**/remote/onnx/tokenizer*.json', (route) => route.fulfill({ status: 200, contentType: 'application/json', path: join(demo, new URL(route.request().url()).pathname.split('/').pop()!) }));
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.getByLabel('Model URL').fill('http://localhost:4173/remote/onnx/demo.onnx');
  await page.getByRole('button', { name: 'Load URL' }).click();
  await expect(page.getByTestId('model-name')).toHaveText('http://localhost:4173/remote/onnx/demo.onnx', { timeout: 120_000 });
  await expect(page.getByTestId('model-backend')).toContainText('onnxruntime-web');
  await expect(page.getByTestId('model-summary')).toContainText('context 256');
  // With the tokenizer (and its chat template) found beside the file, the chat takes text.
  await expect(page.getByTestId('model-summary')).not.toContainText('No tokenizer.json');

  await page.getByLabel('Message').fill('Define harbor.');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('reply-token').first()).toBeVisible({ timeout: 120_000 });
  await page.getByTestId('stop').click();
  await expect(page.getByTestId('chat-stats')).toBeVisible({ timeout: 60_000 });
  // A definition runs for dozens of tokens; stopped after the first, only the few already under way arrive.
  const n = Number((await page.getByTestId('chat-stats').textContent())!.match(/(\d+) tokens/)![1]);
  expect(n).toBeGreaterThanOrEqual(1);
  expect(n).toBeLessThanOrEqual(5);
  await expect(page.getByTestId('send')).toBeVisible();
  expect(errors).toEqual([]);
});
