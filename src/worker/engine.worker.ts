/// <reference lib="webworker" />
/** The engine in a Web Worker: owns the GPUDevice, answers requests, streams events. */
import { acquireDevice, browserGpu, type GpuContext, WebGpuUnavailableError } from '../engine/gpu/device';
import { kernelsFor, type Kernels } from '../engine/gpu/kernels';
import { runSelfTest } from '../engine/selftest';
import type { WorkerEvent, WorkerRequest } from './protocol';

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (e: WorkerEvent) => scope.postMessage(e);

let gpu: { ctx: GpuContext; kernels: Kernels } | null = null;

async function init(): Promise<void> {
  try {
    const ctx = await acquireDevice(browserGpu(), {
      onLost: (l) => {
        gpu = null;
        post({ type: 'device-lost', ...l });
      },
      onUncapturedError: (message) => post({ type: 'gpu-error', message }),
    });
    gpu = { ctx, kernels: kernelsFor(ctx) };
    post({ type: 'gpu-ready', info: ctx.info });
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) post({ type: 'gpu-unavailable', message: e.reason, advice: e.advice });
    else throw e;
  }
}

async function handle(req: WorkerRequest): Promise<void> {
  switch (req.type) {
    case 'init':
      return init();
    case 'selftest':
      if (!gpu) throw new Error('No GPU device: the self-test needs WebGPU.');
      post({ type: 'selftest', results: await runSelfTest(gpu.kernels) });
      return;
  }
}

scope.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  handle(ev.data).catch((e: unknown) =>
    post({ type: 'error', request: ev.data.type, message: e instanceof Error ? e.message : String(e) }),
  );
};
