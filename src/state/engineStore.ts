/** What the UI knows about the engine: GPU status, adapter, self-test. Fed only by worker events. */
import { create } from 'zustand';
import type { GpuInfo } from '../engine/gpu/device';
import type { SelfTestResult } from '../engine/selftest';
import type { WorkerEvent } from '../worker/protocol';

/** 'recovering': the device was lost and the engine is making a new one and reloading the model. */
export type GpuStatus = 'starting' | 'ready' | 'unavailable' | 'lost' | 'recovering';

/** A message at the top of the page about something that happened to the user's work. */
export interface Notice {
  kind: 'info' | 'warn';
  text: string;
}

/** Notices by topic: 'device' (loss and recovery), 'storage' (saved state that could not be used). */
export type NoticeTopic = 'device' | 'storage';

export interface EngineState {
  status: GpuStatus;
  info: GpuInfo | null;
  problem: { message: string; advice?: string } | null;
  selftest: SelfTestResult[] | null;
  errors: string[];
  notices: Partial<Record<NoticeTopic, Notice>>;
  /** Live GPU buffers of the engine (debug line in the GPU panel). */
  memory: { live: number; bytes: number } | null;
  /** When the device was last lost (ms since epoch), for the restored notice. */
  lostAt: number | null;
  apply(e: WorkerEvent): void;
}

export function setNotice(topic: NoticeTopic, notice: Notice | null): void {
  useEngineStore.setState((s) => {
    const notices = { ...s.notices };
    if (notice) notices[topic] = notice;
    else delete notices[topic];
    return { notices };
  });
}

export const useEngineStore = create<EngineState>()((set) => ({
  status: 'starting',
  info: null,
  problem: null,
  selftest: null,
  errors: [],
  notices: {},
  memory: null,
  lostAt: null,
  apply(e) {
    switch (e.type) {
      case 'gpu-ready':
        return set({ status: 'ready', info: e.info, problem: null });
      case 'gpu-unavailable':
        return set({ status: 'unavailable', problem: { message: e.message, advice: e.advice } });
      case 'device-lost': {
        const what = `The GPU device was lost (${e.reason}${e.message ? `: ${e.message}` : ''}).`;
        if (e.recovering) {
          set({ status: 'recovering', memory: null, lostAt: Date.now() });
          return setNotice('device', { kind: 'warn', text: `${what} Starting a new device and reloading the model from the browser cache; your conversation is kept.` });
        }
        set({ status: 'lost', memory: null, problem: { message: what, advice: 'Reload the page to start a new device; your conversation is saved and comes back.' } });
        return setNotice('device', { kind: 'warn', text: `${what} The engine could not recover; reload the page (your conversation is saved).` });
      }
      case 'device-restored':
        set({ status: 'ready', info: e.info, problem: null });
        return setNotice('device', { kind: 'warn', text: `The GPU device was lost and a new one started in ${(e.ms / 1000).toFixed(1)} s; reloading the model…` });
      case 'gpu-memory':
        return set({ memory: { live: e.live, bytes: e.bytes } });
      case 'gpu-error':
      case 'error':
        return set((s) => ({ errors: [...s.errors, e.message].slice(-20) }));
      case 'selftest':
        return set({ selftest: e.results });
    }
  },
}));
