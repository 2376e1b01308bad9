/** The Train panel's state: the settings, the run's progress (one record per optimizer step) and its outcome. */
import { create } from 'zustand';
import type { StepEvent, TrainSummary } from '../engine/train/trainer';
import { TRAIN_DEFAULTS, type SavedRun, type TrainSettings } from '../worker/protocol';

export interface TrainState {
  settings: TrainSettings;
  status: 'idle' | 'preparing' | 'running' | 'paused' | 'done' | 'error';
  /** What the data made (set when the run starts). */
  info: { trainExamples: number; valExamples: number; tokens: number; format: string; moeLayers: number[] } | null;
  steps: StepEvent[];
  summary: TrainSummary | null;
  reason: 'finished' | 'early-stop' | 'stopped' | null;
  error: string | null;
  /** The run kept in the browser's storage (a reload or a lost GPU resumes it); null: none. */
  saved: SavedRun | null;
  /** A stored run that could not be used, and where it was set aside. */
  savedProblem: string | null;
  /** The last checkpoint written (or why it could not be). */
  checkpoint: { step: number; error: string | null } | null;
  /** The step the current run went on from (0: started fresh); `auto`: after a device loss. */
  resumed: { from: number; auto: boolean } | null;
  /** The data box's text and where it came from (kept here so a remount or a resumed run keeps it). */
  draft: { text: string; name: string };
  /** Why an export failed. */
  exportError: string | null;
}

export const useTrainStore = create<TrainState>()(() => ({
  settings: TRAIN_DEFAULTS,
  status: 'idle',
  info: null,
  steps: [],
  summary: null,
  reason: null,
  error: null,
  saved: null,
  savedProblem: null,
  checkpoint: null,
  resumed: null,
  exportError: null,
  draft: { text: '', name: 'pasted text' },
}));
