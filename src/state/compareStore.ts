/** A/B comparison: two router presets and what the same conversation did under each. */
import { create } from 'zustand';
import type { RouterConfig } from '../engine/moe/router';

export interface CompareSide {
  router: RouterConfig | null;
  result: { text: string; counts: number[][]; layers: number[]; tokens: number } | null;
}

export interface CompareState {
  a: CompareSide;
  b: CompareSide;
  running: boolean;
}

export const useCompareStore = create<CompareState>()(() => ({
  a: { router: null, result: null },
  b: { router: null, result: null },
  running: false,
}));
