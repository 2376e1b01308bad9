/** The Train panel's state: the settings, the run's progress (one record per optimizer step) and its outcome. */
import { create } from 'zustand';
import type { StepEvent, TrainSummary } from '../engine/train/trainer';
import { TRAIN_DEFAULTS, type TrainSettings } from '../worker/protocol';

export interface TrainState {
  settings: TrainSettings;
  status: 'idle' | 'preparing' | 'running' | 'paused' | 'done' | 'error';
  /** What the data made (set when the run starts). */
  info: { trainExamples: number; valExamples: number; tokens: number; format: string; moeLayers: number[] } | null;
  steps: StepEvent[];
  summary: TrainSummary | null;
  reason: 'finished' | 'early-stop' | 'stopped' | null;
  error: string | null;
}

export const useTrainStore = create<TrainState>()(() => ({
  settings: TRAIN_DEFAULTS,
  status: 'idle',
  info: null,
  steps: [],
  summary: null,
  reason: null,
  error: null,
}));
