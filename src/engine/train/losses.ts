/**
 * Router losses for MoE fine-tuning (issue #7), on the CPU: T·E is small (a few thousand tokens ×
 * at most 256 experts per layer), so the trainer reads the router's scores back, calls these per
 * layer and step, and uploads the gradients as `dProbs` / `dLogits` for encodeRouterBackward.
 *
 * Notation (one MoE layer, one batch): T tokens, E experts, top-k; `probs` [T, E] are the router's
 * scores exactly as encodeRoute wrote them (after temperature, noise and masking); `idx` [T, k] the
 * chosen experts (0xffffffff = none). For expert i:
 *   f_i = (slots routed to i) / (slots routed)      — a fraction of the T·k slots; Σ f = 1; no gradient
 *   P_i = (1/T) Σ_t probs[t, i]                      — mean score; differentiable
 * Every loss returns `loss` = weight · L and `dProbs` = ∂(weight · L)/∂probs, so the trainer adds
 * the loss to its total and hands the gradient to the router backward unchanged.
 *
 * The design notes: seed 000 gives L_balance = λ Σ (f_i − τ)² and L = CE + 0.3·L_balance +
 * 0.1·L_ortho; seed 003 the KL form (written there as λ Σ p_i log q_i). Switch Transformer (Fedus
 * et al. 2021, eq. 4) gives α·N Σ f_i P_i; ST-MoE (Zoph et al. 2022) the router z-loss; DeepSeek-V3
 * (2024, §2.1.2) the auxiliary-loss-free bias update.
 */

/** Balance losses that have a gradient (the 'auxfree' update has none; 'none' is no balancing). */
export type BalanceLossName = 'switch' | 'sqdev' | 'kl';
export type BalancePreset = BalanceLossName | 'auxfree' | 'none';
export const BALANCE_PRESETS: readonly BalancePreset[] = ['switch', 'sqdev', 'kl', 'auxfree', 'none'];

export interface LossTerm {
  /** weight · L: what the trainer adds to its total loss. */
  loss: number;
  /** L alone, for charts (the same at any weight, including 0). */
  value: number;
}

export interface BalanceLossResult extends LossTerm {
  /** [T, E] ∂(weight · L)/∂probs: encodeRouterBackward's `dProbs`. */
  dProbs: Float32Array;
}

export interface BalanceLoss {
  name: BalanceLossName;
  weight: number;
  compute(probs: Float32Array, idx: Uint32Array, T: number, E: number, k: number): BalanceLossResult;
}

export interface BalanceLossOptions {
  /**
   * sqdev's target share τ (default 1/E, the even share). Seed 000 writes (f_i − τ)² without saying
   * what τ is; elsewhere in the notes (003) τ is the softmax temperature, which makes no sense as a
   * share, so here it is the share each expert should get.
   */
  target?: number;
  /**
   * Renormalise each token's scores to sum to 1 before the loss (and chain the gradient back
   * through it). Use it with sigmoid scoring, where the scores of a token do not sum to 1: DeepSeek-V3
   * (eq. 19) balances s_i / Σ_j s_j. Without it, Switch's gradient (all positive) would only push
   * every sigmoid score down together.
   */
  normalize?: boolean;
}

const NONE = 0xffffffff;
/** Floor inside log() for the KL form: a masked expert has score 0 exactly, and log 0 = −∞. */
const LOG_FLOOR = 1e-9;

function checkShapes(probs: Float32Array, idx: Uint32Array, T: number, E: number, k: number): void {
  if (!(Number.isInteger(T) && T >= 0 && Number.isInteger(E) && E >= 1 && Number.isInteger(k) && k >= 1)) throw new RangeError(`balance loss: bad shape T=${T}, E=${E}, k=${k}`);
  if (probs.length !== T * E) throw new RangeError(`balance loss: probs holds ${probs.length} values, expected T·E = ${T * E}`);
  if (idx.length !== T * k) throw new RangeError(`balance loss: idx holds ${idx.length} values, expected T·k = ${T * k}`);
}

/** f_i: fraction of the routed slots that went to expert i (slots with no expert are not counted). */
export function routedFractions(idx: Uint32Array, E: number): Float64Array {
  const f = new Float64Array(E);
  let n = 0;
  for (let i = 0; i < idx.length; i++) {
    const e = idx[i]!;
    if (e === NONE) continue;
    if (e >= E) throw new RangeError(`balance loss: expert id ${e} at slot ${i} is not below E = ${E}`);
    f[e]! += 1;
    n++;
  }
  if (n > 0) for (let e = 0; e < E; e++) f[e] = f[e]! / n;
  return f;
}

/** P_i: mean score of expert i over the tokens (f64). */
export function meanScores(probs: ArrayLike<number>, T: number, E: number): Float64Array {
  const P = new Float64Array(E);
  for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) P[e]! += probs[t * E + e]!;
  if (T > 0) for (let e = 0; e < E; e++) P[e] = P[e]! / T;
  return P;
}

/** Each row divided by its sum (rows summing to 0 stay 0); f64, so the loss sees no extra rounding. */
function normalizeRows(probs: Float32Array, T: number, E: number): { q: Float64Array; sums: Float64Array } {
  const q = new Float64Array(T * E);
  const sums = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let e = 0; e < E; e++) s += probs[t * E + e]!;
    sums[t] = s;
    if (s > 0) for (let e = 0; e < E; e++) q[t * E + e] = probs[t * E + e]! / s;
  }
  return { q, sums };
}

/** Gradient through q = p / Σp, row by row: dp_e = (dq_e − Σ_f dq_f · q_f) / Σp. In place on dq. */
function normalizeBackward(dq: Float32Array, q: Float64Array, sums: Float64Array, T: number, E: number): void {
  for (let t = 0; t < T; t++) {
    const s = sums[t]!;
    if (!(s > 0)) {
      for (let e = 0; e < E; e++) dq[t * E + e] = 0;
      continue;
    }
    let dot = 0;
    for (let e = 0; e < E; e++) dot += dq[t * E + e]! * q[t * E + e]!;
    for (let e = 0; e < E; e++) dq[t * E + e] = (dq[t * E + e]! - dot) / s;
  }
}

/**
 * L and ∂L/∂P_i for each form, given f (no gradient) and P. The per-token gradient is then
 * ∂L/∂probs[t, i] = (∂L/∂P_i) / T, the same for every token.
 */
const FORMS: Record<BalanceLossName, (f: Float64Array, P: Float64Array, E: number, o: BalanceLossOptions) => { value: number; dP: Float64Array }> = {
  /**
   * Switch Transformer: N Σ f_i P_i (1 when perfectly even, E when one expert takes everything).
   * f over the T·k slots, so the even value is 1 at any k; HF's Mixtral/Qwen-MoE
   * load_balancing_loss_func counts f per token (Σ f = k) and so equals k times this.
   */
  switch(f, P, E) {
    const dP = new Float64Array(E);
    let value = 0;
    for (let e = 0; e < E; e++) {
      value += E * f[e]! * P[e]!;
      dP[e] = E * f[e]!;
    }
    return { value, dP };
  },
  /**
   * Seed 000: Σ (f_i − τ)². The notes do not define f_i; the hard fraction of top-k slots is
   * piecewise constant in the router's weights (zero gradient almost everywhere), so the loss would
   * train nothing. Taken here with f_i = P_i, the mean gate probability of G(x) = Softmax(W_g·x)
   * that the same formula block defines: Σ (P_i − τ)², τ = 1/E unless given.
   */
  sqdev(_f, P, E, o) {
    const tau = o.target ?? 1 / E;
    const dP = new Float64Array(E);
    let value = 0;
    for (let e = 0; e < E; e++) {
      const d = P[e]! - tau;
      value += d * d;
      dP[e] = 2 * d;
    }
    return { value, dP };
  },
  /**
   * KL(P ‖ uniform) = Σ P_i log(P_i / (1/E)) (seed 003's "λ Σ p_i log q_i", read as the KL
   * divergence of the mean routing distribution from the even one). 0 when even, log E when one
   * expert takes all. P is renormalised to sum to 1 first (it does already under softmax).
   */
  kl(_f, P, E) {
    let S = 0;
    for (let e = 0; e < E; e++) S += P[e]!;
    const dP = new Float64Array(E);
    if (!(S > 0)) return { value: 0, dP };
    let value = 0;
    const g = new Float64Array(E);
    for (let e = 0; e < E; e++) {
      const p = P[e]! / S;
      if (p > 0) value += p * Math.log(p * E);
      g[e] = Math.log(Math.max(p, LOG_FLOOR) * E) + 1; // ∂/∂p of p·log(pE)
    }
    // Through p = P / S: ∂L/∂P_i = (g_i − Σ_j g_j p_j) / S.
    let dot = 0;
    for (let e = 0; e < E; e++) dot += (g[e]! * P[e]!) / S;
    for (let e = 0; e < E; e++) dP[e] = (g[e]! - dot) / S;
    return { value, dP };
  },
};

/** A balance loss of the given form and weight (λ, α): `compute` gives weight · L and its dProbs. */
export function balanceLoss(name: BalanceLossName, weight: number, opts: BalanceLossOptions = {}): BalanceLoss {
  if (!Object.hasOwn(FORMS, name)) throw new RangeError(`balance loss: unknown form "${String(name)}" (switch, sqdev, kl)`);
  if (!(Number.isFinite(weight) && weight >= 0)) throw new RangeError(`balance loss: weight must be a finite number ≥ 0, got ${weight}`);
  if (opts.target !== undefined && !(Number.isFinite(opts.target) && opts.target >= 0 && opts.target <= 1)) throw new RangeError(`balance loss: target share must be in [0, 1], got ${opts.target}`);
  const form = FORMS[name];
  return {
    name,
    weight,
    compute(probs, idx, T, E, k) {
      checkShapes(probs, idx, T, E, k);
      const norm = opts.normalize ? normalizeRows(probs, T, E) : null;
      const p = norm ? norm.q : probs;
      const f = routedFractions(idx, E);
      const { value, dP } = form(f, meanScores(p, T, E), E, opts);
      const dProbs = new Float32Array(T * E);
      if (T > 0 && weight !== 0) {
        for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) dProbs[t * E + e] = (weight * dP[e]!) / T;
        if (norm) normalizeBackward(dProbs, norm.q, norm.sums, T, E);
      }
      return { loss: weight * value, value, dProbs };
    },
  };
}

/**
 * Router z-loss (ST-MoE eq. 5): (1/T) Σ_t (log Σ_e exp z_te)², on the router's raw logits [T, E]
 * (the linear output, before temperature and noise). It keeps the logits small, so the softmax
 * stays in the range f32 rounds well. dLogits = weight · (2/T) · lse_t · softmax(z_t) is added by
 * the caller to what encodeRouterBackward wrote (same buffer layout). ST-MoE uses weight 1e-3.
 */
export function zLoss(logits: Float32Array, T: number, E: number, weight: number): LossTerm & { dLogits: Float32Array } {
  if (logits.length !== T * E) throw new RangeError(`z-loss: logits holds ${logits.length} values, expected T·E = ${T * E}`);
  const dLogits = new Float32Array(T * E);
  let total = 0;
  for (let t = 0; t < T; t++) {
    let mx = -Infinity;
    for (let e = 0; e < E; e++) mx = Math.max(mx, logits[t * E + e]!);
    let s = 0;
    for (let e = 0; e < E; e++) s += Math.exp(logits[t * E + e]! - mx);
    const lse = mx + Math.log(s);
    total += lse * lse;
    for (let e = 0; e < E; e++) dLogits[t * E + e] = (weight * 2 * lse * Math.exp(logits[t * E + e]! - lse)) / T;
  }
  const value = T > 0 ? total / T : 0;
  return { loss: weight * value, value, dLogits };
}

/**
 * Expert orthogonality loss: the mean squared cosine similarity between distinct rows of an
 * [n, dim] matrix, (1 / (n(n−1))) Σ_{i≠j} (ŵ_i · ŵ_j)², ŵ = w / ‖w‖. 0 when the rows are
 * mutually orthogonal, 1 when all are parallel.
 *
 * Seed 000 names L_ortho in its total loss and does not define it. It is applied here to the router's
 * weight rows W_g [E, hidden] (gate.weight): row i is the direction that selects expert i, so
 * orthogonal rows mean experts chosen for different inputs — the specialisation the notes want —
 * and it is trainable in every mode, router-only included. Rows are normalised so the loss cannot
 * be lowered by shrinking the weights (‖W Wᵀ − I‖² could). The same function takes any E vectors,
 * e.g. each expert's flattened down_proj, at O(n²·dim) cost (router rows: E² · hidden, ~0.3 GFLOP
 * for 256 × 4096, so keep it to small models or every few steps).
 * Rows of norm 0 have no direction: they add nothing and get gradient 0.
 */
export function orthogonalityLoss(w: Float32Array, n: number, dim: number, weight: number): LossTerm & { dW: Float32Array } {
  if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(dim) && dim >= 1) || w.length !== n * dim) throw new RangeError(`orthogonality loss: ${w.length} values for ${n} rows of ${dim}`);
  const dW = new Float32Array(n * dim);
  if (n < 2) return { loss: 0, value: 0, dW };
  const norms = new Float64Array(n);
  const u = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += w[i * dim + d]! ** 2;
    norms[i] = Math.sqrt(s);
    if (norms[i]! > 0) for (let d = 0; d < dim; d++) u[i * dim + d] = w[i * dim + d]! / norms[i]!;
  }
  const c = new Float64Array(n * n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += u[i * dim + d]! * u[j * dim + d]!;
      c[i * n + j] = c[j * n + i] = dot;
      sum += 2 * dot * dot;
    }
  }
  const scale = 1 / (n * (n - 1));
  const value = sum * scale;
  // ∂L/∂û_i = scale · 4 Σ_{j≠i} c_ij û_j (each pair appears twice in the sum, each square gives 2);
  // through û = w/‖w‖: ∂L/∂w_i = (g − (g·û_i) û_i) / ‖w_i‖.
  const g = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    if (!(norms[i]! > 0)) continue;
    g.fill(0);
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const cij = c[i * n + j]!;
      if (cij === 0) continue;
      for (let d = 0; d < dim; d++) g[d]! += 4 * scale * cij * u[j * dim + d]!;
    }
    let gu = 0;
    for (let d = 0; d < dim; d++) gu += g[d]! * u[i * dim + d]!;
    for (let d = 0; d < dim; d++) dW[i * dim + d] = (weight * (g[d]! - gu * u[i * dim + d]!)) / norms[i]!;
  }
  return { loss: weight * value, value, dW };
}

/**
 * DeepSeek-V3's auxiliary-loss-free balancing (§2.1.2): after each step, every expert's selection
 * bias moves by `rate` (their γ = 0.001) toward balance: b_i += γ · sign(mean load − load_i).
 * An overloaded expert's bias goes down, an idle one's up; equal loads leave it alone. No gradient:
 * the bias only changes which experts are chosen (RouterConfig.bias adds to the selection score,
 * not to the gate weight), so it fights imbalance without a loss term pulling against CE.
 * Returns the new bias (the input is not changed), ready for RouterConfig.bias.
 */
export function auxFreeBias(counts: ArrayLike<number>, bias: ArrayLike<number> | null, rate: number): number[] {
  const E = counts.length;
  if (bias && bias.length !== E) throw new RangeError(`aux-free bias: ${bias.length} biases for ${E} experts`);
  if (!(Number.isFinite(rate) && rate >= 0)) throw new RangeError(`aux-free bias: rate must be a finite number ≥ 0, got ${rate}`);
  let total = 0;
  for (let e = 0; e < E; e++) total += counts[e]!;
  const mean = E ? total / E : 0;
  return Array.from({ length: E }, (_, e) => (bias ? bias[e]! : 0) + rate * Math.sign(mean - counts[e]!));
}

/**
 * Expert dropout for one step (seed 003's expert_dropout: 0.1): each expert is left out of this
 * step's routing with probability `rate` (it goes into RouterConfig.disabled, so the router picks
 * among the others and no expert can become the only path for a token). At least `keep` experts
 * (top-k) always stay on. Deterministic in (seed, step), so a resumed run drops the same experts.
 */
export function expertDropout(E: number, rate: number, keep: number, seed: number, step: number): number[] {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`expert dropout: rate must be in [0, 1), got ${rate}`);
  if (rate === 0) return [];
  // mulberry32 seeded by (seed, step): the same split the rest of the code base uses for test data.
  let a = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step >>> 0, 0x85ebca6b)) >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const off: number[] = [];
  for (let e = 0; e < E; e++) if (next() < rate) off.push(e);
  // Too few left: give back the last ones dropped.
  while (E - off.length < keep && off.length) off.pop();
  return off;
}

/**
 * Which router losses a run uses and how strongly; the whole thing is serialisable (it goes into the
 * training-run settings). CE is always on, at weight 1.
 */
export interface LossConfig {
  balance: BalancePreset;
  /** Weight of the balance loss (Switch's α, the notes' λ); unused for 'auxfree' / 'none'. */
  balanceWeight: number;
  /** sqdev's τ; null = 1/E. */
  balanceTarget: number | null;
  /** Per-expert bias step γ for 'auxfree'. */
  auxFreeRate: number;
  /** Router z-loss weight (0 = off). */
  zLossWeight: number;
  /** Orthogonality loss weight over the router rows (0 = off). */
  orthoWeight: number;
}

const BASE: LossConfig = { balance: 'none', balanceWeight: 0, balanceTarget: null, auxFreeRate: 0, zLossWeight: 0, orthoWeight: 0 };

/**
 * Named starting points. Weights: Switch α = 0.01 (Switch Transformer; seed 003's
 * balance_loss_weight 0.01); sqdev and KL also 0.01; aux-free γ = 0.001 (DeepSeek-V3).
 * 'notes' is seed 000's total L = CE + 0.3·L_balance + 0.1·L_ortho with its own L_balance (sqdev,
 * λ folded into the 0.3).
 */
export const LOSS_PRESETS: Readonly<Record<BalancePreset | 'notes', LossConfig>> = {
  switch: { ...BASE, balance: 'switch', balanceWeight: 0.01 },
  sqdev: { ...BASE, balance: 'sqdev', balanceWeight: 0.01 },
  kl: { ...BASE, balance: 'kl', balanceWeight: 0.01 },
  auxfree: { ...BASE, balance: 'auxfree', auxFreeRate: 0.001 },
  none: BASE,
  notes: { ...BASE, balance: 'sqdev', balanceWeight: 0.3, orthoWeight: 0.1 },
};

/** Seed 000's total: CE + 0.3·L_balance + 0.1·L_ortho. */
export const notesTotal: LossConfig = LOSS_PRESETS.notes;

/** Throws a RangeError naming the first field out of range. */
export function validateLossConfig(c: LossConfig): void {
  const bad = (field: string, why: string) => {
    throw new RangeError(`Loss setting ${field}: ${why}`);
  };
  if (!BALANCE_PRESETS.includes(c.balance)) bad('balance', `must be one of ${BALANCE_PRESETS.join(', ')}, got ${String(c.balance)}`);
  const weight = (field: keyof LossConfig, v: number) => {
    if (!(Number.isFinite(v) && v >= 0 && v <= 100)) bad(field, `must be in [0, 100], got ${v}`);
  };
  weight('balanceWeight', c.balanceWeight);
  weight('zLossWeight', c.zLossWeight);
  weight('orthoWeight', c.orthoWeight);
  if (!(Number.isFinite(c.auxFreeRate) && c.auxFreeRate >= 0 && c.auxFreeRate <= 1)) bad('auxFreeRate', `must be in [0, 1], got ${c.auxFreeRate}`);
  if (c.balanceTarget !== null && !(c.balanceTarget >= 0 && c.balanceTarget <= 1)) bad('balanceTarget', `must be in [0, 1] or null, got ${c.balanceTarget}`);
}

/** The balance loss a config asks for, or null ('auxfree' and 'none' have no loss term). */
export function balanceLossFor(c: LossConfig, scoring: 'softmax' | 'sigmoid' = 'softmax'): BalanceLoss | null {
  if (c.balance === 'auxfree' || c.balance === 'none' || c.balanceWeight === 0) return null;
  return balanceLoss(c.balance, c.balanceWeight, { normalize: scoring === 'sigmoid', ...(c.balanceTarget !== null ? { target: c.balanceTarget } : {}) });
}
