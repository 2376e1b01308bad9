/**
 * onnxruntime-web's WebGPU EP in Node (tests, CLI): it finds WebGPU through `navigator.gpu`, which
 * Node lacks, so Dawn's GPU object (gpu/node.ts, with its SharedArrayBuffer write shim) is put
 * there, and its WebAssembly is read from node_modules. Only Node code imports this file.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { nodeGpu } from '../gpu/node';
import { configureOrt } from './ort-backend';

/** The WebGPU EP build of onnxruntime-web's wasm, as the package ships it. */
export function ortWasmPath(): string {
  return createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm');
}

let ready = false;
export function useOrtInNode(dawnFlags: string[] = []): void {
  if (ready) return;
  ready = true;
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: nodeGpu(dawnFlags) }, configurable: true, writable: true });
  configureOrt({ wasmBinary: readFileSync(ortWasmPath()), logLevel: process.env.ORT_LOG === 'verbose' ? 'verbose' : 'error' });
}
