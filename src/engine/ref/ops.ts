/**
 * Plain TypeScript references for the GPU kernels (llm.c style): obvious loops, f64 accumulation.
 * Tests compare each kernel with these; the page's self-test does too.
 */

/** y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias). */
export function matmulRef(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, N: number, K: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s;
    }
  }
  return y;
}

export function rmsnormRef(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const y = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i]! * inv * weight[i]!;
  }
  return y;
}

export function softmaxRef(x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - mx);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - mx) / s;
  }
  return y;
}

export interface RouteRef {
  probs: Float32Array;
  idx: Uint32Array;
  weights: Float32Array;
}

/** The router with its knobs (see moe_route.wgsl for the order they apply in). */
export interface RouteRefOptions {
  scoring?: 'softmax' | 'sigmoid';
  temperature?: number;
  bias?: ArrayLike<number> | null;
  disabled?: number[];
  nGroup?: number;
  topkGroup?: number;
  groupScore?: 'max' | 'top2sum';
  routedScale?: number;
  /** Noise added to the logits, [T, E] (the kernel draws it from a hash; tests pass it in). */
  noise?: Float32Array;
}

export function routeRef(logits: Float32Array, tokens: number, experts: number, k: number, renormalize: boolean, o: RouteRefOptions = {}): RouteRef {
  const tau = o.temperature ?? 1;
  const off = new Set(o.disabled ?? []);
  const probs = new Float32Array(tokens * experts);
  const idx = new Uint32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const z = Array.from({ length: experts }, (_, e) => (off.has(e) ? -Infinity : logits[t * experts + e]! / tau + (o.noise?.[t * experts + e] ?? 0)));
    if (o.scoring === 'sigmoid') z.forEach((v, e) => (probs[t * experts + e] = off.has(e) ? 0 : 1 / (1 + Math.exp(-v))));
    else {
      const mx = Math.max(...z);
      const ex = z.map((v) => (v === -Infinity ? 0 : Math.exp(v - mx)));
      const sum = ex.reduce((a, b) => a + b, 0);
      ex.forEach((v, e) => (probs[t * experts + e] = sum > 0 ? v / sum : 0));
    }
    const choice = (e: number) => probs[t * experts + e]! + (o.bias ? o.bias[e]! : 0);
    let allowed = Array.from({ length: experts }, (_, e) => e).filter((e) => !off.has(e));
    const G = o.nGroup ?? 1;
    if (G > 1) {
      const size = experts / G;
      const gval = Array.from({ length: G }, (_, g) => {
        const c = allowed.filter((e) => Math.floor(e / size) === g).map(choice).sort((a, b) => b - a);
        return o.groupScore === 'top2sum' ? (c[0] ?? -Infinity) + (c[1] ?? 0) : c[0] ?? -Infinity;
      });
      const keep = Array.from({ length: G }, (_, g) => g).sort((a, b) => gval[b]! - gval[a]! || a - b).slice(0, o.topkGroup ?? 1);
      allowed = allowed.filter((e) => keep.includes(Math.floor(e / size)));
    }
    const order = allowed.sort((a, b) => choice(b) - choice(a) || a - b);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const e = order[j];
      idx[t * k + j] = e ?? 0xffffffff;
      weights[t * k + j] = e === undefined ? 0 : probs[t * experts + e]!;
      sum += weights[t * k + j]!;
    }
    const norm = renormalize && sum > 0 ? 1 / sum : 1;
    for (let j = 0; j < k; j++) weights[t * k + j] = weights[t * k + j]! * norm * (o.routedScale ?? 1);
  }
  return { probs, idx, weights };
}

export function embeddingRef(ids: ArrayLike<number>, table: Float32Array, dim: number, scale: number): Float32Array {
  const out = new Float32Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) for (let i = 0; i < dim; i++) out[t * dim + i] = table[ids[t]! * dim + i]! * scale;
  return out;
}

/** rotate_half RoPE on x[T, heads, D] at positions start+t, using cos/sin tables [pos, D/2]. */
export function ropeRef(x: Float32Array, cos: Float32Array, sin: Float32Array, tokens: number, heads: number, D: number, start: number): Float32Array {
  const y = new Float32Array(x);
  const h = D / 2;
  for (let t = 0; t < tokens; t++) {
    for (let hd = 0; hd < heads; hd++) {
      const b = (t * heads + hd) * D;
      for (let i = 0; i < h; i++) {
        const c = cos[(start + t) * h + i]!, s = sin[(start + t) * h + i]!;
        const a0 = x[b + i]!, a1 = x[b + i + h]!;
        y[b + i] = a0 * c - a1 * s;
        y[b + i + h] = a1 * c + a0 * s;
      }
    }
  }
  return y;
}

/**
 * Causal GQA attention: q[T,H,D] at positions start+t over k[P,KVH,D] (P ≥ start+T) and values
 * v[P,KVH,vStride] whose rows' first vDim entries are the value (default: vDim = vStride = D); out [T,H,vDim].
 */
export function attentionRef(q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, KVH: number, D: number, start: number, scale: number, vDim = D, vStride = vDim): Float32Array {
  const out = new Float32Array(T * H * vDim);
  const group = H / KVH;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / group);
      const n = start + t + 1;
      const s = new Float64Array(n);
      let mx = -Infinity;
      for (let j = 0; j < n; j++) {
        let d = 0;
        for (let i = 0; i < D; i++) d += q[(t * H + h) * D + i]! * k[(j * KVH + kv) * D + i]!;
        s[j] = d * scale;
        mx = Math.max(mx, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < n; j++) z += (s[j] = Math.exp(s[j]! - mx));
      for (let i = 0; i < vDim; i++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += s[j]! * v[(j * KVH + kv) * vStride + i]!;
        out[(t * H + h) * vDim + i] = acc / z;
      }
    }
  }
  return out;
}

export function swigluRef(gu: Float32Array, rows: number, inter: number): Float32Array {
  const out = new Float32Array(rows * inter);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inter; i++) {
      const g = gu[r * 2 * inter + i]!, u = gu[r * 2 * inter + inter + i]!;
      out[r * inter + i] = (g / (1 + Math.exp(-g))) * u;
    }
  }
  return out;
}

/**
 * Routed experts, token by token: Σ_j gate · down_e(swiglu(gate_up_e · x)) (+ shared, sigmoid-gated
 * when gate logits are given). wGateUp [E, 2I, H], wDown [E, H, I]. With a capacity, each expert
 * serves only its first `capacity` slots in (token, choice) order.
 */
export function expertsRef(
  x: Float32Array, idx: Uint32Array, gates: Float32Array, wGateUp: Float32Array, wDown: Float32Array,
  T: number, topk: number, H: number, I: number,
  shared?: { out: Float32Array; gateLogits?: Float32Array },
  capacity = 0,
): Float32Array {
  const out = new Float32Array(T * H);
  const taken = new Map<number, number>();
  for (let t = 0; t < T; t++) {
    const xt = x.subarray(t * H, (t + 1) * H);
    for (let j = 0; j < topk; j++) {
      const e = idx[t * topk + j]!;
      if (e === 0xffffffff) continue;
      const n = taken.get(e) ?? 0;
      taken.set(e, n + 1);
      if (capacity > 0 && n >= capacity) continue; // over capacity: dropped, in token order
      const gu = matmulRef(xt, wGateUp.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), null, 1, 2 * I, H);
      const act = swigluRef(gu, 1, I);
      const y = matmulRef(act, wDown.subarray(e * H * I, (e + 1) * H * I), null, 1, H, I);
      for (let d = 0; d < H; d++) out[t * H + d] = out[t * H + d]! + gates[t * topk + j]! * y[d]!;
    }
    if (shared) {
      const g = shared.gateLogits ? 1 / (1 + Math.exp(-shared.gateLogits[t]!)) : 1;
      for (let d = 0; d < H; d++) out[t * H + d] = out[t * H + d]! + g * shared.out[t * H + d]!;
    }
  }
  return out;
}

/** Greedy choice with HF's repetition penalty; ties to the lower id. */
export function greedyRef(logits: Float32Array, history: ArrayLike<number>, penalty: number): number {
  const l = new Float32Array(logits);
  if (penalty !== 1) for (let i = 0; i < history.length; i++) {
    const id = history[i]!;
    const v = logits[id]!;
    l[id] = v > 0 ? v / penalty : v * penalty;
  }
  let best = 0;
  for (let v = 1; v < l.length; v++) if (l[v]! > l[best]!) best = v;
  return best;
}
