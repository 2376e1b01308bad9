import { resolve } from 'node:path';
import { defineConfig } from 'vite';

/**
 * Bundles the CLI (and bench programs) into one ESM file for Node: every import inlined, shaders
 * included through the same `?raw` glob as the page, only `webgpu` (Dawn's native addon) left out.
 * The same file runs on the H100 machine from .gpu/ (see shared/gpu/README.md).
 */
const root = resolve(import.meta.dirname, '..');
export default defineConfig({
  root,
  logLevel: 'warn',
  ssr: { noExternal: true, external: ['webgpu'] },
  build: {
    ssr: true,
    target: 'node20',
    outDir: process.env.CLI_OUT_DIR ?? resolve(root, 'dist-cli'),
    emptyOutDir: false,
    minify: false,
    rollupOptions: {
      input: { cli: resolve(root, 'cli/main.ts') },
      output: { format: 'es', entryFileNames: '[name].mjs', codeSplitting: false },
    },
  },
});
