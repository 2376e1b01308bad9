/**
 * Routing-stability monitor for MoE fine-tuning (issue #7; design notes, seed 000): fed each step's
 * per-layer expert counts, it records load, balance (CV, entropy), dead and cold experts, the
 * router's own entropy, and the flip rate of a fixed probe set; and it applies the notes' rule
 * against routing oscillation ("路由震荡": expert choices jumping back and forth early in
 * fine-tuning) — `if std(routing_counts) > threshold: adjust_learning_rate(optimizer, 0.5)` — by
 * returning an 'lr-halved' action that the trainer carries out.
 *
 * The notes' line takes the std of one batch's counts across experts; that measures imbalance
 * (the CV here already reports it), not oscillation. Oscillation is a change over time, so the
 * std is taken over a window of steps, per expert, of its load share, as the issue words it
 * ("when the std of routing counts over a window exceeds a threshold").
 */
import { balanceStats, COLD_FRACTION } from '../moe/stats';

export interface MonitorOptions {
  /** Steps in the oscillation window (default 10). */
  window: number;
  /**
   * Oscillation threshold (default 0.5): an expert whose load share has a std over the window above
   * threshold × the even share (1/E) halves the learning rate. Relative to the even share so one
   * setting fits 8 experts and 256.
   */
  threshold: number;
  /** Cold-expert threshold (default COLD_FRACTION = 5 %, seed 000: "专家激活率低于5%"). */
  coldFraction: number;
  /**
   * What coldFraction is a fraction of. 'tokens' (default, as src/engine/moe/stats.ts and the
   * notes: an expert activated by fewer than 5 % of the tokens); 'evenShare' (fewer than 5 % of
   * the k·T/E tokens an expert gets under even routing), for models with E/k ≥ 20 where even
   * routing already puts every expert under 5 % of the tokens (DeepSeek-V3: 256 experts, top-8).
   */
  coldOf: 'tokens' | 'evenShare';
  /** Halvings at most in one run (default 8, lr / 256); later oscillation is recorded, not acted on. */
  maxHalvings: number;
  /**
   * Take the std about the window's straight-line trend instead of its mean (default false: the
   * notes' plain std). A fast but steady drift (the router collapsing onto one expert) has a large
   * plain std and so halves the lr too; detrended, only back-and-forth swings count, and a collapse
   * shows in the CV, entropy and cold / dead experts instead.
   */
  detrend: boolean;
}

export const MONITOR_DEFAULTS: MonitorOptions = { window: 10, threshold: 0.5, coldFraction: COLD_FRACTION, coldOf: 'tokens', maxHalvings: 8, detrend: false };

/** One step's routing, as the trainer reads it back. */
export interface MonitorInput {
  step: number;
  /** Per layer, slots routed to each expert this step ([layers][E]; each token counts once per expert). */
  counts: ReadonlyArray<ArrayLike<number>>;
  /** Tokens routed this step (each to k experts). */
  tokens: number;
  /** Per layer, the router's scores [tokens, E] (optional: gives routerEntropy). */
  probs?: ReadonlyArray<Float32Array>;
  /**
   * On check steps: the top-k experts [P, k] per layer that the router picks for the fixed probe set
   * (the same P tokens every check, routed with training noise and dropout off). Gives the flip rate.
   */
  probe?: { k: number; idx: ReadonlyArray<Uint32Array> };
}

export interface MonitorRecord {
  step: number;
  /** [layer][expert] share of the step's routed slots (each layer sums to 1; all 0 if nothing routed). */
  load: number[][];
  /** Per layer: coefficient of variation of the counts (0 = even). */
  cv: number[];
  /** Per layer: entropy of the load over log E (1 = even, 0 = one expert takes all). */
  entropy: number[];
  /** Per layer: mean over tokens of the router's score entropy over log E (1 = undecided); null without probs. */
  routerEntropy: Array<number | null>;
  /** Fraction of probe (token, layer) pairs whose top-k set changed since the last check; null when not checked, or first check. */
  flipRate: number | null;
  /** The same per layer. */
  layerFlipRate: number[] | null;
  /** Per layer: experts that got no token. */
  dead: number[][];
  /** Per layer: experts under the cold threshold (see MonitorOptions.coldOf). Dead experts are cold too. */
  cold: number[][];
  /** Largest windowed std of an expert's load share over the even share (the oscillation statistic); null until the window fills. */
  oscillation: number | null;
}

export interface LrHalved {
  kind: 'lr-halved';
  step: number;
  reason: string;
  /** What to multiply the learning rate by now (0.5), and the product of all halvings so far. */
  factor: number;
  lrScale: number;
}

export type MonitorAction = LrHalved;

/** RoutingMonitor's state between steps (see snapshot / restore). */
export interface MonitorSnapshot {
  history: number[][][];
  lastProbe: { k: number; idx: number[][] } | null;
  shape: { layers: number; experts: number } | null;
  halvings: number;
  lrScale: number;
}

export class RoutingMonitor {
  readonly options: MonitorOptions;
  /** Shares of the last `window` steps, oldest first: [step][layer][expert]. */
  private history: number[][][] = [];
  private lastProbe: { k: number; idx: Uint32Array[] } | null = null;
  private shape: { layers: number; experts: number } | null = null;
  private halvings = 0;
  /** Product of the halvings so far (1 = none): the trainer multiplies its scheduled lr by it. */
  lrScale = 1;

  constructor(opts: Partial<MonitorOptions> = {}) {
    const o = { ...MONITOR_DEFAULTS, ...opts };
    const bad = (field: string, why: string) => {
      throw new RangeError(`Monitor setting ${field}: ${why}`);
    };
    if (!Number.isInteger(o.window) || o.window < 2 || o.window > 10_000) bad('window', `must be a whole number from 2 to 10000, got ${o.window}`);
    if (!(o.threshold > 0 && Number.isFinite(o.threshold))) bad('threshold', `must be a finite number > 0, got ${o.threshold}`);
    if (!(o.coldFraction >= 0 && o.coldFraction <= 1)) bad('coldFraction', `must be in [0, 1], got ${o.coldFraction}`);
    if (o.coldOf !== 'tokens' && o.coldOf !== 'evenShare') bad('coldOf', `must be 'tokens' or 'evenShare', got ${String(o.coldOf)}`);
    if (!Number.isInteger(o.maxHalvings) || o.maxHalvings < 0) bad('maxHalvings', `must be a whole number ≥ 0, got ${o.maxHalvings}`);
    this.options = o;
  }

  /** Everything the monitor carries from step to step, as plain JSON (checkpoints, resume). */
  snapshot(): MonitorSnapshot {
    return {
      history: this.history.map((s) => s.map((l) => [...l])),
      lastProbe: this.lastProbe ? { k: this.lastProbe.k, idx: this.lastProbe.idx.map((a) => Array.from(a)) } : null,
      shape: this.shape ? { ...this.shape } : null,
      halvings: this.halvings,
      lrScale: this.lrScale,
    };
  }

  /** Continues from a snapshot (of a monitor with the same options), as if the steps had run here. */
  restore(s: MonitorSnapshot): void {
    if (s.history.length > this.options.window) throw new RangeError(`monitor snapshot: ${s.history.length} steps of history, the window is ${this.options.window}`);
    if (!(s.lrScale > 0 && s.lrScale <= 1) || !Number.isInteger(s.halvings) || s.halvings < 0) throw new RangeError('monitor snapshot: lr scale or halvings out of range');
    this.history = s.history.map((st) => st.map((l) => [...l]));
    this.lastProbe = s.lastProbe ? { k: s.lastProbe.k, idx: s.lastProbe.idx.map((a) => Uint32Array.from(a)) } : null;
    this.shape = s.shape ? { ...s.shape } : null;
    this.halvings = s.halvings;
    this.lrScale = s.lrScale;
  }

  /** Records one step; returns its record and what the trainer must do (halve its lr). */
  update(x: MonitorInput): { record: MonitorRecord; actions: MonitorAction[] } {
    const L = x.counts.length;
    const E = L ? x.counts[0]!.length : 0;
    if (!L || !E) throw new RangeError('monitor: counts needs at least one layer of at least one expert');
    if (x.counts.some((c) => c.length !== E)) throw new RangeError('monitor: every layer needs the same number of experts');
    if (!(Number.isFinite(x.tokens) && x.tokens >= 0)) throw new RangeError(`monitor: tokens must be a finite number ≥ 0, got ${x.tokens}`);
    if (this.shape && (this.shape.layers !== L || this.shape.experts !== E)) {
      throw new RangeError(`monitor: ${L} layers × ${E} experts, but the run so far had ${this.shape.layers} × ${this.shape.experts}`);
    }
    this.shape = { layers: L, experts: E };
    const o = this.options;

    const load: number[][] = [], cv: number[] = [], entropy: number[] = [], dead: number[][] = [], cold: number[][] = [];
    const routerEntropy: Array<number | null> = [];
    for (let l = 0; l < L; l++) {
      const c = x.counts[l]!;
      const slots = Array.from(c).reduce((a, b) => a + b, 0);
      // evenShare: fraction of the tokens = coldFraction · (k / E), with k = slots / tokens.
      const coldFraction = o.coldOf === 'tokens' || x.tokens <= 0 ? o.coldFraction : (o.coldFraction * slots) / x.tokens / E;
      const s = balanceStats(c, x.tokens, coldFraction);
      load.push(Array.from(c, (v) => (slots > 0 ? v / slots : 0)));
      cv.push(s.cv);
      entropy.push(s.normalizedEntropy);
      dead.push(s.dead);
      cold.push(s.cold);
      const p = x.probs?.[l];
      routerEntropy.push(p ? scoreEntropy(p, E) : null);
    }

    const { flipRate, layerFlipRate } = this.flips(x.probe);

    this.history.push(load);
    if (this.history.length > o.window) this.history.shift();
    const osc = this.history.length === o.window ? windowStd(this.history, E, o.detrend) : null;

    const actions: MonitorAction[] = [];
    if (osc && osc.value > o.threshold && this.halvings < o.maxHalvings) {
      this.halvings++;
      this.lrScale *= 0.5;
      const share = (i: number) => this.history[i]![osc.layer]![osc.expert]!;
      const lo = Math.min(...this.history.map((_, i) => share(i))), hi = Math.max(...this.history.map((_, i) => share(i)));
      actions.push({
        kind: 'lr-halved',
        step: x.step,
        factor: 0.5,
        lrScale: this.lrScale,
        reason:
          `routing oscillates: layer ${osc.layer} expert ${osc.expert}'s load share swung between ${pct(lo)} and ${pct(hi)} over the last ${o.window} steps ` +
          `(std ${(osc.value * 100).toFixed(0)} % of the even share ${pct(1 / E)}, threshold ${(o.threshold * 100).toFixed(0)} %); learning rate halved (now ×${this.lrScale})`,
      });
      // A fresh window after each halving: the lower lr gets `window` steps to calm routing before
      // the same swings, still in the window, could halve it again.
      this.history = [];
    }
    return { record: { step: x.step, load, cv, entropy, routerEntropy, flipRate, layerFlipRate, dead, cold, oscillation: osc ? osc.value : null }, actions };
  }

  /** Flip rate of this check against the last one, then this check becomes the baseline. */
  private flips(probe: MonitorInput['probe']): { flipRate: number | null; layerFlipRate: number[] | null } {
    if (!probe) return { flipRate: null, layerFlipRate: null };
    const { k, idx } = probe;
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`monitor: probe k must be a whole number ≥ 1, got ${k}`);
    if (idx.length !== this.shape!.layers) throw new RangeError(`monitor: probe has ${idx.length} layers, counts ${this.shape!.layers}`);
    const P = idx[0]!.length / k;
    if (!Number.isInteger(P) || idx.some((a) => a.length !== P * k)) throw new RangeError(`monitor: every probe layer needs P·k = ${idx[0]!.length} ids (k = ${k})`);
    const cur = idx.map((a) => Uint32Array.from(a));
    // Each token's set sorted, so the order of the k picks (by weight) does not count as a flip.
    for (const a of cur) for (let t = 0; t < P; t++) a.subarray(t * k, (t + 1) * k).sort();
    const prev = this.lastProbe;
    this.lastProbe = { k, idx: cur };
    // A different probe set (size or k) has nothing to compare with: it starts a new baseline.
    if (!prev || prev.k !== k || prev.idx[0]!.length !== cur[0]!.length || P === 0) return { flipRate: null, layerFlipRate: null };
    const layerFlipRate = cur.map((a, l) => {
      const b = prev.idx[l]!;
      let changed = 0;
      for (let t = 0; t < P; t++) {
        for (let j = 0; j < k; j++) {
          if (a[t * k + j] !== b[t * k + j]) {
            changed++;
            break;
          }
        }
      }
      return changed / P;
    });
    return { flipRate: layerFlipRate.reduce((s, v) => s + v, 0) / layerFlipRate.length, layerFlipRate };
  }
}

const pct = (v: number) => `${(v * 100).toFixed(1)} %`;

/**
 * Max over (layer, expert) of the population std over the window of the load share (about the mean,
 * or about the least-squares line when detrending), over 1/E.
 */
function windowStd(h: number[][][], E: number, detrend: boolean): { value: number; layer: number; expert: number } {
  let best = { value: 0, layer: 0, expert: 0 };
  const n = h.length;
  const ibar = (n - 1) / 2;
  let sxx = 0;
  for (let i = 0; i < n; i++) sxx += (i - ibar) ** 2;
  for (let l = 0; l < h[0]!.length; l++) {
    for (let e = 0; e < E; e++) {
      let m = 0;
      for (let i = 0; i < n; i++) m += h[i]![l]![e]!;
      m /= n;
      let sxy = 0;
      if (detrend) for (let i = 0; i < n; i++) sxy += (i - ibar) * (h[i]![l]![e]! - m);
      const slope = detrend ? sxy / sxx : 0;
      let v = 0;
      for (let i = 0; i < n; i++) v += (h[i]![l]![e]! - m - slope * (i - ibar)) ** 2;
      const rel = Math.sqrt(v / n) * E;
      if (rel > best.value) best = { value: rel, layer: l, expert: e };
    }
  }
  return best;
}

/** Mean over tokens of −Σ q log q / log E, q = a token's scores over their sum (sigmoid scores do not sum to 1). */
export function scoreEntropy(probs: Float32Array, E: number): number {
  const T = Math.floor(probs.length / E);
  if (T === 0 || E < 2) return 0;
  let total = 0;
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let e = 0; e < E; e++) s += probs[t * E + e]!;
    if (!(s > 0)) continue;
    let h = 0;
    for (let e = 0; e < E; e++) {
      const q = probs[t * E + e]! / s;
      if (q > 0) h -= q * Math.log(q);
    }
    total += h;
  }
  return total / T / Math.log(E);
}

/**
 * Early stopping on the validation loss (seeds 000 and 004: stop when validation perplexity has not
 * gone down for 3 checks in a row). Perplexity is exp(loss), so the loss gives the same decision.
 * "Not gone down" is measured against the best so far (not the previous check), so a slow
 * zig-zag that never beats the best still stops; an improvement must beat the best by minDelta.
 */
export class EarlyStopping {
  best = Infinity;
  /** Checks since the best one. */
  sinceBest = 0;
  constructor(readonly patience = 3, readonly minDelta = 0) {
    if (!Number.isInteger(patience) || patience < 1) throw new RangeError(`early stopping: patience must be a whole number ≥ 1, got ${patience}`);
    if (!(minDelta >= 0)) throw new RangeError(`early stopping: minDelta must be ≥ 0, got ${minDelta}`);
  }

  /** Feeds one validation loss; `stop` once `patience` checks in a row failed to improve (NaN never improves). */
  update(valLoss: number): { improved: boolean; stop: boolean; best: number; sinceBest: number } {
    const improved = valLoss < this.best - this.minDelta;
    if (improved) {
      this.best = valLoss;
      this.sinceBest = 0;
    } else this.sinceBest++;
    return { improved, stop: this.sinceBest >= this.patience, best: this.best, sinceBest: this.sinceBest };
  }
}
