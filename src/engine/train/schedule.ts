/**
 * Learning-rate schedule: linear warmup, then cosine decay to a floor (design note 004: warmup +
 * cosine; 003: cosine from 3e-5).
 */
export interface LrSchedule {
  /** The peak learning rate, reached at the end of warmup. */
  peak: number;
  /** Steps of linear warmup (0 = start at the peak). */
  warmupSteps: number;
  /** Steps in the whole run; the cosine reaches the floor at the last one. */
  totalSteps: number;
  /** The floor as a fraction of the peak (0 … 1). */
  minRatio: number;
}

/** Throws a RangeError naming the first field out of range. */
export function validateSchedule(s: LrSchedule): void {
  const bad = (field: string, why: string) => {
    throw new RangeError(`LR schedule ${field}: ${why}`);
  };
  if (!(Number.isFinite(s.peak) && s.peak >= 0)) bad('peak', `must be a finite number ≥ 0, got ${s.peak}`);
  if (!Number.isInteger(s.totalSteps) || s.totalSteps < 1) bad('totalSteps', `must be a whole number ≥ 1, got ${s.totalSteps}`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0 || s.warmupSteps > s.totalSteps) {
    bad('warmupSteps', `must be a whole number from 0 to totalSteps (${s.totalSteps}), got ${s.warmupSteps}`);
  }
  if (!(s.minRatio >= 0 && s.minRatio <= 1)) bad('minRatio', `must be in [0, 1], got ${s.minRatio}`);
}

/**
 * The learning rate of optimizer step `step` (0-based). Warmup is (step + 1) / warmupSteps · peak,
 * as llm.c does, rather than HF's step / warmupSteps: HF's first step has lr 0 and so does nothing,
 * which on the short in-tab runs this is for is a step wasted. After warmup:
 * floor + (peak − floor) · ½(1 + cos(π · progress)), progress going 0 → 1 over the remaining steps;
 * from the last step on it stays at the floor.
 */
export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmupSteps) return (s.peak * (step + 1)) / s.warmupSteps;
  const floor = s.peak * s.minRatio;
  // The decay spans steps warmupSteps … totalSteps − 1 and lands on the floor at the last one (HF's
  // divides by totalSteps − warmupSteps and never quite gets there). A single step after warmup has
  // nothing to decay over: it runs at the peak (a one-step run should not train at the floor).
  const span = s.totalSteps - 1 - s.warmupSteps;
  const progress = span > 0 ? Math.min(1, (step - s.warmupSteps) / span) : step < s.totalSteps ? 0 : 1;
  return floor + (s.peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
