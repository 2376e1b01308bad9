/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

/**
 * The page's Content-Security-Policy. No inline script, no eval; WebAssembly compilation only
 * ('wasm-unsafe-eval', which lets in no JavaScript eval): the ONNX backend's onnxruntime-web runs
 * its kernels' host code as wasm, loaded from this origin only when an .onnx is opened. Styles only from our CSS file
 * (React and d3 set inline styles through the CSSOM, which CSP allows), and connections to this
 * origin plus https:// hosts only: a model URL the user types can be on any https host, which a
 * static policy cannot name in advance, and src/preset/model-url.ts refuses the rest up front.
 */
const CSP: Record<string, string> = {
  'default-src': "'self'",
  'script-src': "'self' 'wasm-unsafe-eval'",
  'style-src': "'self'",
  'img-src': "'self' data:",
  'font-src': "'self'",
  'connect-src': "'self' https:",
  'worker-src': "'self'",
  'object-src': "'none'",
  'base-uri': "'none'",
  'form-action': "'none'",
};
const cspText = (extra: Record<string, string> = {}) =>
  Object.entries({ ...CSP, ...extra })
    .map(([k, v]) => `${k} ${v}`)
    .join('; ');
/**
 * As a response header (vite preview, and hosts reading dist/_headers) the policy also covers the
 * engine worker, whose script gets the policy of its own response, not the page's meta tag; and
 * frame-ancestors works only in a header.
 */
export const CSP_HEADER = cspText({ 'frame-ancestors': "'none'" });
const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP_HEADER,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * Puts the policy into the built index.html as a meta tag (it holds on any static host, even one
 * that sends no headers) and writes dist/_headers for hosts that read that file. Not in `vite dev`:
 * React's fast refresh injects an inline script there.
 */
function contentSecurityPolicy(): Plugin {
  return {
    name: 'content-security-policy',
    apply: 'build',
    transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: cspText() }, injectTo: 'head-prepend' }],
    generateBundle() {
      const lines = Object.entries(SECURITY_HEADERS).map(([k, v]) => `  ${k}: ${v}`);
      this.emitFile({ type: 'asset', fileName: '_headers', source: `/*\n${lines.join('\n')}\n` });
    },
  };
}

export default defineConfig({
  plugins: [react(), contentSecurityPolicy()],
  worker: { format: 'es' },
  build: { target: 'es2022', chunkSizeWarningLimit: 2048 },
  server: { port: 5173 },
  preview: { port: 4173, headers: SECURITY_HEADERS },
  test: {
    pool: 'forks',
    // SwiftShader runs kernels on the CPU: give GPU tests room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['tests/unit/**/*.test.ts'] } },
      {
        extends: true,
        // GPU test files share one worker's modules, so one Dawn device and its compiled pipelines
        // serve them all: SwiftShader compiles each pipeline on the CPU, which was ~30 % of their
        // time when every file started afresh. tests/gpu/setup.ts keeps the per-test error check.
        test: { name: 'gpu', include: ['tests/gpu/**/*.test.ts'], isolate: false, setupFiles: ['tests/gpu/setup.ts'] },
      },
    ],
  },
});
