// Backward of the grouped expert matmul (matmul_grouped*.wgsl): rows r of the plan's sorted order
// (moe_plan.wgsl) belong to expert idx[sorted[r]], expert e's rows are [off_e, off_e + counts[e])
// with off_e = Σ_{x<e} counts[x], and row r computed out[r, :] = A_r · W[e]ᵀ with W stacked
// [E, N, K] (A_r = x[sorted[r] / topk] when GATHER = 1, else a[r]).
//   grad_x:  dA[r, k] = Σ_n dY[r, n] · W[e_r][n, k] for the kept rows (others are left alone)
//   grad_w:  dW[e, n, k] (+)= Σ_{r of e} dY[r, n] · A_r[k], one thread per element, rows in order
//   scatter: dx[t, c] (+)= Σ_j dA[slot_pos[t·k + j], c] over the kept slots (the GATHER's transpose)
// Every output element is summed by one thread in a fixed order: no atomics, deterministic. The
// work is O(rows·N·K) without tiling, which suits the small models of in-tab fine-tuning.
struct Params { N: u32, K: u32, topk: u32, slots: u32, experts: u32, flags: u32, _a: u32, _b: u32 }
const ACCUMULATE = 1u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> sorted: array<u32>;
@group(0) @binding(4) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read> counts: array<u32>;
#include "wload_${WFMT}.wgsl"
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(9) var<storage, read> slot_pos: array<u32>;

const DROPPED = 0xffffffffu;

fn kept_rows() -> u32 {
  var n = 0u;
  for (var e = 0u; e < p.experts; e++) { n += counts[e]; }
  return n;
}

@compute @workgroup_size(256)
fn grad_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= p.slots * p.K) { return; }
  let r = i / p.K;
  let k = i % p.K;
  if (r >= kept_rows()) { return; }
  let e = idx[sorted[r]];
  let wbase = e * p.N * p.K + k;
  var s = 0.0;
  for (var n = 0u; n < p.N; n++) { s = fma(dy[r * p.N + n], wv(wbase + n * p.K), s); }
  out[i] = s;
}

@compute @workgroup_size(256)
fn grad_w(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= p.experts * p.N * p.K) { return; }
  let e = i / (p.N * p.K);
  let n = (i / p.K) % p.N;
  let k = i % p.K;
  var off = 0u;
  for (var x = 0u; x < e; x++) { off += counts[x]; }
  var s = 0.0;
  for (var r = off; r < off + counts[e]; r++) {
    var ar = r;
    if (${GATHER}u == 1u) { ar = sorted[r] / p.topk; }
    s = fma(dy[r * p.N + n], a[ar * p.K + k], s);
  }
  if ((p.flags & ACCUMULATE) != 0u) { s += out[i]; }
  out[i] = s;
}

// Here N is unused, K the row width, slots = T·topk; dy holds dA [rows, K].
@compute @workgroup_size(256)
fn scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  let tokens = p.slots / p.topk;
  if (i >= tokens * p.K) { return; }
  let t = i / p.K;
  let c = i % p.K;
  var s = 0.0;
  for (var j = 0u; j < p.topk; j++) {
    let r = slot_pos[t * p.topk + j];
    if (r != DROPPED) { s += dy[r * p.K + c]; }
  }
  if ((p.flags & ACCUMULATE) != 0u) { s += out[i]; }
  out[i] = s;
}
