/** What the UI knows about the engine: GPU status, adapter, self-test. Fed only by worker events. */
import { create } from 'zustand';
import type { GpuInfo } from '../engine/gpu/device';
import type { SelfTestResult } from '../engine/selftest';
import type { WorkerEvent } from '../worker/protocol';

export type GpuStatus = 'starting' | 'ready' | 'unavailable' | 'lost';

export interface EngineState {
  status: GpuStatus;
  info: GpuInfo | null;
  problem: { message: string; advice?: string } | null;
  selftest: SelfTestResult[] | null;
  errors: string[];
  apply(e: WorkerEvent): void;
}

export const useEngineStore = create<EngineState>()((set) => ({
  status: 'starting',
  info: null,
  problem: null,
  selftest: null,
  errors: [],
  apply(e) {
    switch (e.type) {
      case 'gpu-ready':
        return set({ status: 'ready', info: e.info, problem: null });
      case 'gpu-unavailable':
        return set({ status: 'unavailable', problem: { message: e.message, advice: e.advice } });
      case 'device-lost':
        return set({ status: 'lost', problem: { message: `The GPU device was lost (${e.reason}). ${e.message}`, advice: 'Reload the page to start a new device.' } });
      case 'gpu-error':
      case 'error':
        return set((s) => ({ errors: [...s.errors, e.message].slice(-20) }));
      case 'selftest':
        return set({ selftest: e.results });
    }
  },
}));
