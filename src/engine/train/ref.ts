/**
 * Plain TypeScript references for the backward kernels and the optimizer (llm.c style): obvious
 * loops, f64 accumulation, f32 results. Each backward is checked against central finite differences
 * of its forward in src/engine/ref/ops.ts (tests/unit/train/grad_ref.test.ts), and each WGSL kernel
 * against these (tests/gpu/train_kernels.test.ts).
 *
 * Conventions shared with the kernels: row-major tensors, HF layouts (a linear weight is [out, in]),
 * `d` prefixes a gradient of a scalar loss with respect to the named tensor.
 */

/** Gradients of y[M,N] = x[M,K] · W[N,K]ᵀ + b[N] given dy[M,N]. */
export interface LinearGrads {
  dx: Float32Array;
  dw: Float32Array;
  db: Float32Array;
}

export function linearBackwardRef(dy: Float32Array, x: Float32Array, w: Float32Array, M: number, N: number, K: number): LinearGrads {
  const dx = new Float32Array(M * K);
  const dw = new Float32Array(N * K);
  const db = new Float32Array(N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dy[m * N + n]! * w[n * K + k]!;
      dx[m * K + k] = s;
    }
  }
  for (let n = 0; n < N; n++) {
    let sb = 0;
    for (let m = 0; m < M; m++) sb += dy[m * N + n]!;
    db[n] = sb;
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += dy[m * N + n]! * x[m * K + k]!;
      dw[n * K + k] = s;
    }
  }
  return { dx, dw, db };
}

/**
 * Gradients of y = x · r · weight, r = 1/sqrt(mean(x²) + eps) per row:
 * dx_i = r·w_i·dy_i − x_i · r³/dim · Σ_j dy_j·w_j·x_j, dweight_i = Σ_rows dy_i·x_i·r.
 */
export function rmsnormBackwardRef(x: Float32Array, weight: Float32Array, dy: Float32Array, rows: number, dim: number, eps: number): { dx: Float32Array; dweight: Float32Array } {
  const dx = new Float32Array(rows * dim);
  const dw = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const b = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[b + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += dy[b + i]! * weight[i]! * x[b + i]!;
    for (let i = 0; i < dim; i++) {
      dx[b + i] = inv * weight[i]! * dy[b + i]! - (x[b + i]! * inv ** 3 * dot) / dim;
      dw[i] = dw[i]! + dy[b + i]! * x[b + i]! * inv;
    }
  }
  return { dx, dweight: Float32Array.from(dw) };
}

/** d(gate_up)[rows, 2I] of out = silu(gate) · up, gate half first (as swigluRef). */
export function swigluBackwardRef(gu: Float32Array, dout: Float32Array, rows: number, inter: number): Float32Array {
  const dgu = new Float32Array(rows * 2 * inter);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inter; i++) {
      const g = gu[r * 2 * inter + i]!, u = gu[r * 2 * inter + inter + i]!, d = dout[r * inter + i]!;
      const sg = 1 / (1 + Math.exp(-g));
      dgu[r * 2 * inter + i] = d * u * sg * (1 + g * (1 - sg));
      dgu[r * 2 * inter + inter + i] = d * g * sg;
    }
  }
  return dgu;
}

/**
 * dx of rotate_half RoPE (ropeRef): the rotation is orthogonal, so the gradient is the inverse
 * rotation, dx[i] = dy[i]·c + dy[i+h]·s and dx[i+h] = dy[i+h]·c − dy[i]·s.
 */
export function ropeBackwardRef(dy: Float32Array, cos: Float32Array, sin: Float32Array, tokens: number, heads: number, D: number, start: number): Float32Array {
  const dx = new Float32Array(dy.length);
  const h = D / 2;
  for (let t = 0; t < tokens; t++) {
    for (let hd = 0; hd < heads; hd++) {
      const b = (t * heads + hd) * D;
      for (let i = 0; i < h; i++) {
        const c = cos[(start + t) * h + i]!, s = sin[(start + t) * h + i]!;
        const a0 = dy[b + i]!, a1 = dy[b + i + h]!;
        dx[b + i] = a0 * c + a1 * s;
        dx[b + i + h] = a1 * c - a0 * s;
      }
    }
  }
  return dx;
}

/**
 * Gradients of causal GQA self-attention over T tokens from position 0 (attentionRef with
 * start = 0 and k/v [T, KVH, D]): P = softmax(scale·q·kᵀ) over keys j ≤ t, out = P·v.
 * dv_j = Σ_t P_tj·dout_t; ds_tj = P_tj·(dout_t·v_j − dout_t·out_t); dq_t = scale·Σ_j ds_tj·k_j;
 * dk_j = scale·Σ_t ds_tj·q_t (sums over the query heads of each KV head).
 */
export function attentionBackwardRef(
  q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array,
  T: number, H: number, KVH: number, D: number, scale: number,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const dq = new Float64Array(T * H * D), dk = new Float64Array(T * KVH * D), dv = new Float64Array(T * KVH * D);
  const group = H / KVH;
  const p = new Float64Array(T), dp = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / group);
      const qo = (t * H + h) * D;
      let mx = -Infinity;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let i = 0; i < D; i++) s += q[qo + i]! * k[(j * KVH + kv) * D + i]!;
        p[j] = s * scale;
        mx = Math.max(mx, p[j]!);
      }
      let z = 0;
      for (let j = 0; j <= t; j++) z += (p[j] = Math.exp(p[j]! - mx));
      let delta = 0;
      for (let j = 0; j <= t; j++) {
        p[j] = p[j]! / z;
        let d = 0;
        for (let i = 0; i < D; i++) d += dout[qo + i]! * v[(j * KVH + kv) * D + i]!;
        dp[j] = d;
        delta += p[j]! * d;
      }
      for (let j = 0; j <= t; j++) {
        const ds = p[j]! * (dp[j]! - delta);
        const ko = (j * KVH + kv) * D;
        for (let i = 0; i < D; i++) {
          dq[qo + i] = dq[qo + i]! + scale * ds * k[ko + i]!;
          dk[ko + i] = dk[ko + i]! + scale * ds * q[qo + i]!;
          dv[ko + i] = dv[ko + i]! + p[j]! * dout[qo + i]!;
        }
      }
    }
  }
  return { dq: Float32Array.from(dq), dk: Float32Array.from(dk), dv: Float32Array.from(dv) };
}

/** Targets equal to this (PyTorch's default ignore_index) add nothing to the loss or the gradient. */
export const IGNORE_INDEX = -100;

/**
 * Mean softmax cross-entropy over the rows whose target is not IGNORE_INDEX, and its gradient
 * dlogits = gradScale · (softmax − onehot) / count (zero rows for ignored targets). With no counted
 * row the loss and the gradient are 0 (PyTorch gives NaN; a batch of padding should not poison a run).
 */
export function crossEntropyRef(logits: Float32Array, targets: ArrayLike<number>, T: number, V: number, gradScale = 1): { loss: number; losses: Float32Array; dlogits: Float32Array } {
  const dlogits = new Float32Array(T * V);
  const losses = new Float32Array(T);
  let count = 0;
  for (let t = 0; t < T; t++) if (targets[t] !== IGNORE_INDEX) count++;
  let total = 0;
  for (let t = 0; t < T; t++) {
    const y = targets[t]!;
    if (y === IGNORE_INDEX) continue;
    if (!(y >= 0 && y < V)) throw new RangeError(`target ${y} at row ${t} is outside the vocabulary of ${V}`);
    let mx = -Infinity;
    for (let c = 0; c < V; c++) mx = Math.max(mx, logits[t * V + c]!);
    let s = 0;
    for (let c = 0; c < V; c++) s += Math.exp(logits[t * V + c]! - mx);
    const lse = mx + Math.log(s);
    losses[t] = lse - logits[t * V + y]!;
    total += lse - logits[t * V + y]!;
    for (let c = 0; c < V; c++) {
      const pc = Math.exp(logits[t * V + c]! - lse);
      dlogits[t * V + c] = (gradScale * (pc - (c === y ? 1 : 0))) / count;
    }
  }
  return { loss: count ? total / count : 0, losses, dlogits };
}

/** dTable[V, D] of out[t] = table[ids[t]] · scale: each token's gradient row added to its id's row. */
export function embeddingBackwardRef(ids: ArrayLike<number>, dout: Float32Array, vocab: number, dim: number, scale: number): Float32Array {
  const d = new Float64Array(vocab * dim);
  for (let t = 0; t < ids.length; t++) for (let i = 0; i < dim; i++) d[ids[t]! * dim + i] = d[ids[t]! * dim + i]! + scale * dout[t * dim + i]!;
  return Float32Array.from(d);
}

/** The forward knobs the router backward must know (the rest only change which experts were chosen). */
export interface RouterGradOptions {
  scoring?: 'softmax' | 'sigmoid';
  temperature?: number;
  renormalize: boolean;
  routedScale?: number;
}

/**
 * dLogits[T, E] of the router (routeRef), given the forward's scores `probs` [T, E] (after noise and
 * masking), its choice `idx` [T, k] (0xffffffff = no expert) and the gradient of the k gate weights
 * `dGates` [T, k]; plus, optionally, a gradient on the scores themselves `dProbs` [T, E] (balance
 * losses). Top-k selection and the selection-only bias are piecewise constant: no gradient.
 *   gate_j = scale · p_{e_j} / S (S = Σ_j p_{e_j} when renormalising, else 1)
 *   dp_e = dProbs_e + Σ_{j: e_j = e} scale · (dGates_j − Σ_i dGates_i · gate_i / scale) / S
 *   softmax: dz_e = p_e · (dp_e − Σ_f p_f·dp_f);  sigmoid: dz_e = dp_e · p_e · (1 − p_e);  dLogits = dz / τ
 */
export function routerBackwardRef(
  probs: Float32Array, idx: Uint32Array, dGates: Float32Array, T: number, E: number, k: number,
  o: RouterGradOptions, dProbs?: Float32Array | null,
): Float32Array {
  const scale = o.routedScale ?? 1, tau = o.temperature ?? 1;
  const out = new Float32Array(T * E);
  const dp = new Float64Array(E);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) dp[e] = dProbs ? dProbs[t * E + e]! : 0;
    let S = 0;
    for (let j = 0; j < k; j++) {
      const e = idx[t * k + j]!;
      if (e !== 0xffffffff) S += probs[t * E + e]!;
    }
    const renorm = o.renormalize && S > 0;
    const inv = renorm ? 1 / Math.max(S, 1e-20) : 1;
    // Σ_i dGates_i · p_i / S: the part of each weight's gradient that the shared denominator carries.
    let shared = 0;
    if (renorm) for (let j = 0; j < k; j++) {
      const e = idx[t * k + j]!;
      if (e !== 0xffffffff) shared += dGates[t * k + j]! * probs[t * E + e]! * inv;
    }
    for (let j = 0; j < k; j++) {
      const e = idx[t * k + j]!;
      if (e === 0xffffffff) continue;
      dp[e] = dp[e]! + scale * inv * (dGates[t * k + j]! - shared);
    }
    if (o.scoring === 'sigmoid') {
      for (let e = 0; e < E; e++) {
        const p = probs[t * E + e]!;
        out[t * E + e] = (dp[e]! * p * (1 - p)) / tau;
      }
    } else {
      let dot = 0;
      for (let e = 0; e < E; e++) dot += probs[t * E + e]! * dp[e]!;
      for (let e = 0; e < E; e++) out[t * E + e] = (probs[t * E + e]! * (dp[e]! - dot)) / tau;
    }
  }
  return out;
}

/** AdamW hyper-parameters (PyTorch's torch.optim.AdamW, weight decay decoupled from the gradient). */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** √(Σ g²) over every gradient tensor, as torch.nn.utils.clip_grad_norm_ measures it (2-norm). */
export function gradNormRef(grads: ReadonlyArray<ArrayLike<number>>): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i]! ** 2;
  return Math.sqrt(s);
}

/** clip_grad_norm_'s factor: maxNorm / (norm + 1e-6), clamped to 1; maxNorm ≤ 0 disables clipping. */
export function clipScaleRef(norm: number, maxNorm: number): number {
  return maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
}

/**
 * One AdamW step at `step` (1-based) in place, with the gradient multiplied by `gradScale` (the
 * clip factor) first: p ← p·(1 − lr·wd); m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
 * p −= lr · (m / (1−β1^step)) / (√(v / (1−β2^step)) + eps).
 */
export function adamwStepRef(p: Float32Array, g: ArrayLike<number>, m: Float32Array, v: Float32Array, hp: AdamWHyper, step: number, gradScale = 1): void {
  const bc1 = 1 - hp.beta1 ** step, bc2 = 1 - hp.beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * gradScale;
    // The moments are stored in f32 (as on the GPU), so the update reads back the rounded values.
    m[i] = hp.beta1 * m[i]! + (1 - hp.beta1) * gi;
    v[i] = hp.beta2 * v[i]! + (1 - hp.beta2) * gi * gi;
    const mi = m[i]!, vi = v[i]!;
    // PyTorch decays in place (param.mul_(1 − lr·wd)): the decayed weight is rounded to f32 before
    // the Adam update is taken from it.
    const decayed = Math.fround(p[i]! * (1 - hp.lr * hp.weightDecay));
    p[i] = decayed - (hp.lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + hp.eps);
  }
}

/** Marks a (token, choice) slot that went to no expert (moe_plan.wgsl's DROPPED). */
export const DROPPED = 0xffffffff;

/** The shared-expert term of the combine: none, added, or added through a sigmoid gate (Qwen2-MoE). */
export interface CombineShared {
  /** [T, dim] the shared expert's output. */
  out: Float32Array;
  /** [T] gate logits; absent: the term is added ungated. */
  gateLogits?: Float32Array;
}

/**
 * The forward of moe_combine.wgsl (no such reference in src/engine/ref/ops.ts: expertsRef fuses it):
 * out[t] = Σ_j gate[t, j] · y[slotPos[t, j]] over kept slots (+ shared, sigmoid-gated when given).
 */
export function moeCombineRef(gate: Float32Array, slotPos: Uint32Array, y: Float32Array, T: number, k: number, dim: number, shared?: CombineShared): Float32Array {
  const out = new Float32Array(T * dim);
  for (let t = 0; t < T; t++) {
    const sg = shared?.gateLogits ? 1 / (1 + Math.exp(-shared.gateLogits[t]!)) : 1;
    for (let d = 0; d < dim; d++) {
      let s = 0;
      for (let j = 0; j < k; j++) {
        const pos = slotPos[t * k + j]!;
        if (pos !== DROPPED) s += gate[t * k + j]! * y[pos * dim + d]!;
      }
      if (shared) s += sg * shared.out[t * dim + d]!;
      out[t * dim + d] = s;
    }
  }
  return out;
}

/**
 * Gradients of moeCombineRef: dGate[t, j] = dout_t · y[pos] (0 when dropped) — what the router
 * backward takes as dGates; dY[pos] = gate[t, j] · dout_t (rows no slot points at are 0); the shared
 * expert's dOut = σ(g_t)·dout_t (or dout_t ungated) and dGateLogits[t] = σ'(g_t) · dout_t · shared_t.
 */
export function moeCombineBackwardRef(
  gate: Float32Array, slotPos: Uint32Array, y: Float32Array, dout: Float32Array, T: number, k: number, dim: number, yRows: number, shared?: CombineShared,
): { dGate: Float32Array; dY: Float32Array; dSharedOut?: Float32Array; dSharedGate?: Float32Array } {
  const dGate = new Float32Array(T * k);
  const dY = new Float32Array(yRows * dim);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const pos = slotPos[t * k + j]!;
      if (pos === DROPPED) continue;
      let s = 0;
      for (let d = 0; d < dim; d++) {
        s += dout[t * dim + d]! * y[pos * dim + d]!;
        dY[pos * dim + d] = gate[t * k + j]! * dout[t * dim + d]!;
      }
      dGate[t * k + j] = s;
    }
  }
  if (!shared) return { dGate, dY };
  const dSharedOut = new Float32Array(T * dim);
  const dSharedGate = shared.gateLogits ? new Float32Array(T) : undefined;
  for (let t = 0; t < T; t++) {
    const sg = shared.gateLogits ? 1 / (1 + Math.exp(-shared.gateLogits[t]!)) : 1;
    let s = 0;
    for (let d = 0; d < dim; d++) {
      dSharedOut[t * dim + d] = sg * dout[t * dim + d]!;
      s += dout[t * dim + d]! * shared.out[t * dim + d]!;
    }
    if (dSharedGate) dSharedGate[t] = s * sg * (1 - sg);
  }
  return { dGate, dY, dSharedOut, dSharedGate };
}
