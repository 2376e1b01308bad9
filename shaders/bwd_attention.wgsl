// Backward of causal GQA self-attention over T tokens from position 0 (attention.wgsl with
// start = 0, k/v [T, KVH, D]), f32. P = softmax(scale · q·kᵀ) over keys j ≤ t, out = P·v;
// query head h reads KV head h / (H / KVH). Given q, k, v, out and dout:
//   grad_q, one workgroup per (head, query t): recomputes the scores for its row, saves
//     lse = log Σ_j exp(s_j) and delta = dout_t · out_t (= Σ_j P_j · dout_t·v_j) to stats, and
//     writes dq_t = scale · Σ_j P_j (dout_t·v_j − delta) · k_j
//   grad_kv, one workgroup per (KV head, key j): over every query t ≥ j of the heads that share it,
//     dv_j = Σ P_tj · dout_t and dk_j = scale · Σ P_tj (dout_t·v_j − delta_t) · q_t, with P_tj
//     rebuilt from the saved lse (FlashAttention-2's backward, without its tiling)
// grad_kv reads the stats grad_q wrote: record grad_q first. Each output element is summed by one
// thread in a fixed order: deterministic, no atomics. D ≤ 256 (one thread per dimension).
#include "bwd_reduce.wgsl"
struct Params { tokens: u32, heads: u32, kv_heads: u32, head_dim: u32, scale: f32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;     // [T, H, D]
@group(0) @binding(2) var<storage, read> k: array<f32>;     // [T, KVH, D]
@group(0) @binding(3) var<storage, read> v: array<f32>;     // [T, KVH, D]
@group(0) @binding(4) var<storage, read> out: array<f32>;   // [T, H, D]
@group(0) @binding(5) var<storage, read> dout: array<f32>;  // [T, H, D]
@group(0) @binding(6) var<storage, read_write> stats: array<f32>; // [T, H, 2]: lse, delta
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
@group(0) @binding(8) var<storage, read_write> dk: array<f32>;
@group(0) @binding(9) var<storage, read_write> dv: array<f32>;

const NEG = -3.402823e38;
var<workgroup> row_a: array<f32, 256>; // grad_q: q_t; grad_kv: k_j
var<workgroup> row_b: array<f32, 256>; // grad_q: dout_t; grad_kv: v_j
var<workgroup> w_a: array<f32, 256>;
var<workgroup> w_b: array<f32, 256>;

// row_a · k[o … o+D) and row_b · v[o … o+D): one key row against the row held in workgroup memory.
fn dot_a_k(o: u32) -> f32 {
  var s = 0.0;
  for (var i = 0u; i < p.head_dim; i++) { s = fma(row_a[i], k[o + i], s); }
  return s;
}
fn dot_b_v(o: u32) -> f32 {
  var s = 0.0;
  for (var i = 0u; i < p.head_dim; i++) { s = fma(row_b[i], v[o + i], s); }
  return s;
}

@compute @workgroup_size(256)
fn grad_q(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let D = p.head_dim;
  let h = wg.x;
  let t = wg.y;
  let kvh = h / (p.heads / p.kv_heads);
  let qo = (t * p.heads + h) * D;
  var dl = 0.0;
  if (lid < D) {
    row_a[lid] = q[qo + lid];
    row_b[lid] = dout[qo + lid];
    dl = dout[qo + lid] * out[qo + lid];
  }
  let delta = bwd_sum(dl, lid); // its barriers also publish row_a / row_b
  let n = t + 1u;
  var mx = NEG;
  for (var j = lid; j < n; j += 256u) { mx = max(mx, p.scale * dot_a_k((j * p.kv_heads + kvh) * D)); }
  mx = bwd_max(mx, lid);
  var se = 0.0;
  for (var j = lid; j < n; j += 256u) { se += exp(p.scale * dot_a_k((j * p.kv_heads + kvh) * D) - mx); }
  let lse = mx + log(bwd_sum(se, lid));
  if (lid == 0u) {
    stats[(t * p.heads + h) * 2u] = lse;
    stats[(t * p.heads + h) * 2u + 1u] = delta;
  }
  var acc = 0.0;
  for (var j0 = 0u; j0 < n; j0 += 256u) {
    let j = j0 + lid;
    var ds = 0.0;
    if (j < n) {
      let o = (j * p.kv_heads + kvh) * D;
      ds = exp(p.scale * dot_a_k(o) - lse) * (dot_b_v(o) - delta);
    }
    w_a[lid] = ds;
    workgroupBarrier();
    if (lid < D) {
      let cnt = min(256u, n - j0);
      for (var jj = 0u; jj < cnt; jj++) { acc = fma(w_a[jj], k[((j0 + jj) * p.kv_heads + kvh) * D + lid], acc); }
    }
    workgroupBarrier();
  }
  if (lid < D) { dq[qo + lid] = p.scale * acc; }
}

@compute @workgroup_size(256)
fn grad_kv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let D = p.head_dim;
  let kvh = wg.x;
  let j = wg.y;
  let G = p.heads / p.kv_heads;
  let ko = (j * p.kv_heads + kvh) * D;
  if (lid < D) {
    row_a[lid] = k[ko + lid];
    row_b[lid] = v[ko + lid];
  }
  workgroupBarrier();
  // The (query, head) pairs that see key j, in order t = j, j+1, …, heads inner.
  let count = (p.tokens - j) * G;
  var dk_acc = 0.0;
  var dv_acc = 0.0;
  for (var p0 = 0u; p0 < count; p0 += 256u) {
    let pi = p0 + lid;
    var pr = 0.0;
    var ds = 0.0;
    if (pi < count) {
      let t = j + pi / G;
      let h = kvh * G + pi % G;
      let qo = (t * p.heads + h) * D;
      var s = 0.0;
      var dp = 0.0;
      for (var i = 0u; i < D; i++) {
        s = fma(q[qo + i], row_a[i], s);
        dp = fma(dout[qo + i], row_b[i], dp);
      }
      let st = (t * p.heads + h) * 2u;
      pr = exp(p.scale * s - stats[st]);
      ds = pr * (dp - stats[st + 1u]);
    }
    w_a[lid] = pr;
    w_b[lid] = ds;
    workgroupBarrier();
    if (lid < D) {
      let cnt = min(256u, count - p0);
      for (var pp = 0u; pp < cnt; pp++) {
        let x = p0 + pp;
        let qo = ((j + x / G) * p.heads + kvh * G + x % G) * D + lid;
        dv_acc = fma(w_a[pp], dout[qo], dv_acc);
        dk_acc = fma(w_b[pp], q[qo], dk_acc);
      }
    }
    workgroupBarrier();
  }
  if (lid < D) {
    dk[ko + lid] = p.scale * dk_acc;
    dv[ko + lid] = dv_acc;
  }
}
