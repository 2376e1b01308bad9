/** Generation settings the user picks (router knobs will join them as the URL preset). */
import { create } from 'zustand';
import type { SamplingParams } from '../engine/model/sampling';

export interface SettingsState {
  sampling: SamplingParams;
  maxNewTokens: number;
  setSampling(patch: Partial<SamplingParams>): void;
  setMaxNewTokens(n: number): void;
}

export const useSettingsStore = create<SettingsState>()((set) => ({
  sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.1, seed: 0 },
  maxNewTokens: 48,
  setSampling: (patch) => set((s) => ({ sampling: { ...s.sampling, ...patch } })),
  setMaxNewTokens: (maxNewTokens) => set({ maxNewTokens }),
}));
