/** The page's side of the worker boundary: starts the worker, sends requests, routes events. */
import type { WorkerEvent, WorkerRequest } from './protocol';

export interface EngineClient {
  send(req: WorkerRequest): void;
  terminate(): void;
}

export function startEngineWorker(onEvent: (e: WorkerEvent) => void): EngineClient {
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'engine' });
  worker.onmessage = (ev: MessageEvent<WorkerEvent>) => onEvent(ev.data);
  worker.onerror = (ev) => onEvent({ type: 'error', request: 'init', message: `Engine worker failed: ${ev.message}` });
  return {
    send: (req) => worker.postMessage(req),
    terminate: () => worker.terminate(),
  };
}
