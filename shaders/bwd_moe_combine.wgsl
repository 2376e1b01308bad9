// Backward of the MoE combine (moe_combine.wgsl): out[t] = Σ_j gate[t, j] · y[slot_pos[t·k + j]]
// over kept slots (+ shared, or + σ(shared_gate[t]) · shared), f32.
//   grad_gate, one workgroup per token: dgate[t, j] = dout_t · y[pos] (0 for a dropped slot) — the
//     router backward's dGates
//   grad_y, one thread per (slot, d): dy[pos, d] = gate[t, j] · dout[t, d]; each kept slot owns its
//     row (the plan gives every slot its own), so no atomics. Rows no slot points at are not
//     written: the host clears dy first
//   grad_shared, one workgroup per token: dshared[t] = σ(g_t) · dout_t (dout_t when ungated),
//     dshared_gate[t] = σ'(g_t) · dout_t · shared_t
struct Params { tokens: u32, dim: u32, topk: u32, shared_mode: u32 }
const DROPPED = 0xffffffffu;
#include "bwd_reduce.wgsl"
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;      // [T, k]
@group(0) @binding(2) var<storage, read> slot_pos: array<u32>;  // [T, k]
@group(0) @binding(3) var<storage, read> y: array<f32>;         // [rows, dim] expert outputs
@group(0) @binding(4) var<storage, read> dout: array<f32>;      // [T, dim]
@group(0) @binding(5) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(6) var<storage, read_write> dy: array<f32>;
@group(0) @binding(7) var<storage, read> shared_out: array<f32>;   // [T, dim]
@group(0) @binding(8) var<storage, read> shared_gate: array<f32>;  // [T]
@group(0) @binding(9) var<storage, read_write> dshared: array<f32>;
@group(0) @binding(10) var<storage, read_write> dshared_gate: array<f32>;

@compute @workgroup_size(256)
fn grad_gate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let t = bwd_group(wg, nwg);
  if (t >= p.tokens) { return; } // whole workgroup leaves together: uniform
  for (var j = 0u; j < p.topk; j++) {
    let pos = slot_pos[t * p.topk + j];
    var s = 0.0;
    if (pos != DROPPED) {
      for (var d = lid; d < p.dim; d += 256u) { s = fma(dout[t * p.dim + d], y[pos * p.dim + d], s); }
    }
    let total = bwd_sum(s, lid);
    if (lid == 0u) { dgate[t * p.topk + j] = total; }
  }
}

@compute @workgroup_size(256)
fn grad_y(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= p.tokens * p.topk * p.dim) { return; }
  let slot = i / p.dim;
  let d = i % p.dim;
  let pos = slot_pos[slot];
  if (pos == DROPPED) { return; }
  dy[pos * p.dim + d] = gate[slot] * dout[(slot / p.topk) * p.dim + d];
}

@compute @workgroup_size(256)
fn grad_shared(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let t = bwd_group(wg, nwg);
  if (t >= p.tokens) { return; }
  if (p.shared_mode == 1u) {
    for (var d = lid; d < p.dim; d += 256u) { dshared[t * p.dim + d] = dout[t * p.dim + d]; }
    return;
  }
  let sg = 1.0 / (1.0 + exp(-shared_gate[t]));
  var s = 0.0;
  for (var d = lid; d < p.dim; d += 256u) {
    let g = dout[t * p.dim + d];
    s = fma(g, shared_out[t * p.dim + d], s);
    dshared[t * p.dim + d] = sg * g;
  }
  let total = bwd_sum(s, lid);
  if (lid == 0u) { dshared_gate[t] = total * sg * (1.0 - sg); }
}
