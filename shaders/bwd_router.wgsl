// Backward of the MoE router (moe_route.wgsl) to its logits, one thread per token, f32. Inputs:
// the forward's scores probs [T, E] (after temperature, noise and masking), its choice idx [T, k]
// (NONE = no expert), the gradient of the k gate weights dgates [T, k], and optionally a gradient on
// the scores dprobs [T, E] (balance losses). Top-k selection and the selection-only bias are
// piecewise constant, so they pass no gradient. With gate_j = scale · p_{e_j} / S (S = Σ_j p_{e_j}
// when renormalising, else 1):
//   dp_e = dprobs_e + Σ_{j: e_j = e} scale · (dgates_j − Σ_i dgates_i · p_{e_i} / S) / S
//   softmax: dz_e = p_e · (dp_e − Σ_f p_f · dp_f);  sigmoid: dz_e = dp_e · p_e · (1 − p_e)
//   dlogits = dz / τ   (masked experts have p = 0, so no gradient)
struct Params { tokens: u32, experts: u32, k: u32, flags: u32, temperature: f32, scale: f32, _a: u32, _b: u32 }
const RENORM = 1u;
const SIGMOID = 2u;
const HAS_DPROBS = 4u;
const NONE = 0xffffffffu;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> dgates: array<f32>;
@group(0) @binding(4) var<storage, read> dprobs: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>; // dp first, then overwritten by dz / τ

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.y * nwg.x * 64u + gid.x;
  if (t >= p.tokens) { return; }
  let base = t * p.experts;
  let kb = t * p.k;
  let has_dp = (p.flags & HAS_DPROBS) != 0u;
  for (var e = 0u; e < p.experts; e++) {
    var d = 0.0;
    if (has_dp) { d = dprobs[base + e]; }
    dlogits[base + e] = d;
  }
  var sum = 0.0;
  for (var j = 0u; j < p.k; j++) {
    let e = idx[kb + j];
    if (e != NONE) { sum += probs[base + e]; }
  }
  let renorm = (p.flags & RENORM) != 0u && sum > 0.0;
  let inv = select(1.0, 1.0 / max(sum, 1e-20), renorm);
  var via_sum = 0.0;
  if (renorm) {
    for (var j = 0u; j < p.k; j++) {
      let e = idx[kb + j];
      if (e != NONE) { via_sum += dgates[kb + j] * probs[base + e] * inv; }
    }
  }
  for (var j = 0u; j < p.k; j++) {
    let e = idx[kb + j];
    if (e != NONE) { dlogits[base + e] += p.scale * inv * (dgates[kb + j] - via_sum); }
  }
  if ((p.flags & SIGMOID) != 0u) {
    for (var e = 0u; e < p.experts; e++) {
      let pe = probs[base + e];
      dlogits[base + e] = dlogits[base + e] * pe * (1.0 - pe) / p.temperature;
    }
  } else {
    var dot = 0.0;
    for (var e = 0u; e < p.experts; e++) { dot += probs[base + e] * dlogits[base + e]; }
    for (var e = 0u; e < p.experts; e++) {
      dlogits[base + e] = probs[base + e] * (dlogits[base + e] - dot) / p.temperature;
    }
  }
}
