#!/usr/bin/env node
// `npm run cli -- <command>`: builds the CLI bundle with Vite (so shaders load exactly as in the
// page) when any source is newer than it, then runs it with the given arguments.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist-cli', 'cli.mjs');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const sources = Math.max(...['src/engine', 'shaders', 'cli', 'bench'].map((d) => newest(join(root, d))));
if (!existsSync(bundle) || statSync(bundle).mtimeMs < sources) {
  const { build } = await import('vite');
  await build({ configFile: join(root, 'cli', 'vite.config.ts') });
}
process.argv.splice(1, 1, bundle);
await import(pathToFileURL(bundle).href);
