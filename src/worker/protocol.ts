/** Messages between the page and the engine worker. The UI never sees GPU objects, only these. */
import type { GpuInfo } from '../engine/gpu/device';
import type { SelfTestResult } from '../engine/selftest';

export type WorkerRequest = { type: 'init' } | { type: 'selftest' };

export type WorkerEvent =
  | { type: 'gpu-ready'; info: GpuInfo }
  | { type: 'gpu-unavailable'; message: string; advice: string }
  | { type: 'device-lost'; reason: string; message: string }
  | { type: 'gpu-error'; message: string }
  | { type: 'selftest'; results: SelfTestResult[] }
  | { type: 'error'; request: WorkerRequest['type']; message: string };
