/** The loaded model and the load in progress. Fed by worker events. */
import { create } from 'zustand';
import type { LoadStage, ModelSource, ModelSummary, WeightChoice } from '../worker/protocol';

export interface ModelState {
  source: ModelSource | null;
  status: 'none' | 'loading' | 'ready' | 'error';
  progress: { stage: LoadStage; done: number; total: number; detail: string } | null;
  model: ModelSummary | null;
  loadMs: number | null;
  error: string | null;
  /** Storage for the next load. */
  weights: WeightChoice;
}

export const useModelStore = create<ModelState>()(() => ({
  source: null,
  status: 'none',
  progress: null,
  model: null,
  loadMs: null,
  error: null,
  weights: { format: 'f32', group: 32 },
}));
