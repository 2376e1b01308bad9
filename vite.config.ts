/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  worker: { format: 'es' },
  build: { target: 'es2022', chunkSizeWarningLimit: 2048 },
  server: { port: 5173 },
  preview: { port: 4173 },
  test: {
    include: ['tests/unit/**/*.test.ts', 'tests/gpu/**/*.test.ts'],
    pool: 'forks',
    // SwiftShader runs kernels on the CPU: give GPU tests room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
