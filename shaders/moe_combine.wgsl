// out[t, d] = Σ_j gate[t, j] · y[slot_pos[t·k + j], d] over kept slots  (+ shared expert term)
// SHARED mode 0: none; 1: + shared[t, d]; 2: + sigmoid(shared_gate[t]) · shared[t, d] (Qwen2-MoE).
// With CAPTURE, the routing (expert ids, then gate weights, T·k words each) is also copied into
// capture[cap_base …] here, saving the forward pass two buffer copies per MoE layer.
// main_norm also does what the next add_rmsnorm.wgsl would (one dispatch instead of two): one
// workgroup per token adds alpha · (that sum) into the residual h and writes x = rmsnorm(h) · weight.
#include "reduce.wgsl"
struct Params { tokens: u32, dim: u32, topk: u32, shared_mode: u32, capture: u32, cap_base: u32, alpha: f32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> slot_pos: array<u32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> shared_out: array<f32>;
@group(0) @binding(5) var<storage, read> shared_gate: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> idx: array<u32>;
@group(0) @binding(8) var<storage, read_write> capture: array<u32>;
@group(0) @binding(9) var<storage, read_write> h: array<f32>;
@group(0) @binding(10) var<storage, read> norm_weight: array<f32>;
@group(0) @binding(11) var<storage, read_write> x: array<f32>;

// The experts' weighted sum (+ shared expert) for token t, dimension d.
fn combined(t: u32, d: u32) -> f32 {
  let i = t * p.dim + d;
  var s = 0.0;
  for (var j = 0u; j < p.topk; j++) {
    let slot = t * p.topk + j;
    let pos = slot_pos[slot];
    if (pos == 0xffffffffu) { continue; } // dropped: over capacity, or no expert left
    s = fma(gate[slot], y[pos * p.dim + d], s);
  }
  if (p.shared_mode == 1u) { s += shared_out[i]; }
  if (p.shared_mode == 2u) { s += shared_out[i] / (1.0 + exp(-shared_gate[t])); }
  return s;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  let n = p.tokens * p.topk;
  if (p.capture != 0u && i < n) {
    capture[p.cap_base + i] = idx[i];
    capture[p.cap_base + n + i] = bitcast<u32>(gate[i]);
  }
  if (i >= p.tokens * p.dim) { return; }
  out[i] = combined(i / p.dim, i % p.dim);
}

@compute @workgroup_size(256)
fn main_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let t = row_of(wg, nwg);
  if (t >= p.tokens) { return; } // whole workgroup leaves together: uniform
  let n = p.tokens * p.topk;
  if (p.capture != 0u && lid < p.topk) {
    let i = t * p.topk + lid;
    capture[p.cap_base + i] = idx[i];
    capture[p.cap_base + n + i] = bitcast<u32>(gate[i]);
  }
  let base = t * p.dim;
  var ss = 0.0;
  for (var d = lid; d < p.dim; d += 256u) {
    let v = fma(p.alpha, combined(t, d), h[base + d]);
    h[base + d] = v;
    ss = fma(v, v, ss);
  }
  let total = wg_sum(ss, lid);
  let inv = inverseSqrt(total / f32(p.dim) + p.eps);
  for (var d = lid; d < p.dim; d += 256u) { x[base + d] = h[base + d] * inv * norm_weight[d]; }
}
