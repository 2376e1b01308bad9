import { expect, test } from '@playwright/test';

// Fine-tuning in the page: data pasted, a short router-only run, charts that fill as steps arrive,
// a reload mid-run that resumes from the OPFS checkpoint, exports, and a chat on the fine-tuned model.
const DATA = Array.from({ length: 12 }, (_, i) => `Expert routing sends each token to ${i % 3 === 0 ? 'two' : 'a few'} experts; a balanced router keeps every expert busy and none idle, step ${i}.`).join('\n');

test('a router-only run in the page: charts update, a reload resumes it from its checkpoint, it exports, and the chat uses it', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await page.getByTestId('train-data').fill(DATA);
  await page.getByTestId('train-steps').fill('10');
  await page.getByTestId('train-seqlen').fill('24');
  await page.getByTestId('train-val-every').fill('4');
  await page.getByTestId('train-noise').fill('0.3');
  await page.getByTestId('train-start').click();
  await expect(page.getByTestId('train-info')).toContainText('training and', { timeout: 60_000 });
  // Charts fill step by step, and checkpoints follow.
  await expect(async () => expect(Number(await page.getByTestId('chart-loss').getAttribute('data-points'))).toBeGreaterThanOrEqual(3)).toPass({ timeout: 120_000 });
  await expect(page.getByTestId('train-checkpoint')).toContainText(/at step [1-9]/, { timeout: 60_000 });

  // The tab goes away mid-run; the page comes back with the run saved, its charts and data.
  await page.reload();
  await expect(page.getByTestId('model-name')).toContainText('demo', { timeout: 120_000 });
  await expect(page.getByTestId('train-saved')).toContainText('An interrupted run is saved in this browser: router only', { timeout: 60_000 });
  const savedAt = Number(/step (\d+) of 10/.exec(await page.getByTestId('train-saved').innerText())![1]);
  expect(savedAt).toBeGreaterThanOrEqual(1);
  expect(savedAt).toBeLessThan(10);
  expect(Number(await page.getByTestId('chart-lr').getAttribute('data-points'))).toBe(savedAt);
  await expect(page.getByTestId('train-data')).toHaveValue(DATA);
  await expect(page.getByTestId('train-noise')).toHaveValue('0.3');
  await page.screenshot({ path: 'test-results/train-saved.png', fullPage: true });
  await page.getByTestId('train-resume').click();
  await expect(page.getByTestId('train-resumed')).toContainText(`went on from its checkpoint at step ${savedAt}`, { timeout: 60_000 });
  await expect(page.getByTestId('train-summary')).toContainText('after 10 steps', { timeout: 180_000 });
  await expect(page.getByTestId('train-summary')).toContainText('best validation');
  // One record per step across the reload: the ones from before it and the resumed ones.
  expect(Number(await page.getByTestId('chart-lr').getAttribute('data-points'))).toBe(10);
  expect(Number(await page.getByTestId('chart-flip').getAttribute('data-points'))).toBeGreaterThanOrEqual(1);
  await expect(page.getByTestId('chart-load').locator('rect')).not.toHaveCount(0);
  await page.getByTestId('train-charts').scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/train.png', fullPage: true });

  // Exports: the recipe (with the data as token ids) and the merged weights.
  const downloads: Array<{ name: string; path: string }> = [];
  page.on('download', async (d) => downloads.push({ name: d.suggestedFilename(), path: (await d.path())! }));
  await page.getByTestId('export-recipe').click();
  await expect.poll(() => downloads.map((d) => d.name).sort()).toEqual(['train.jsonl', 'training_config.json', 'validation.jsonl']);
  await page.getByTestId('export-merged').click();
  await expect.poll(() => downloads.length).toBe(4);
  const { readFileSync } = await import('node:fs');
  const recipe = JSON.parse(readFileSync(downloads.find((d) => d.name === 'training_config.json')!.path, 'utf8')) as { mode: string; steps: number };
  expect(recipe).toMatchObject({ mode: 'router', steps: 10 });
  const merged = readFileSync(downloads.find((d) => d.name.endsWith('.safetensors'))!.path);
  const header = JSON.parse(merged.subarray(8, 8 + Number(merged.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>;
  expect(Object.keys(header)).toContain('model.layers.0.mlp.gate.weight');

  await page.getByLabel('Message').fill('hello');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('reply-token').first()).toBeVisible({ timeout: 120_000 });

  // After another reload the finished run can be put back into the freshly loaded model.
  await page.reload();
  await expect(page.getByTestId('train-saved')).toContainText('A finished run', { timeout: 120_000 });
  await page.getByTestId('train-resume').click();
  await expect(page.getByTestId('train-summary')).toContainText('after 10 steps', { timeout: 60_000 });
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
