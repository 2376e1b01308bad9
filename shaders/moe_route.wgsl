// Router: turns router logits into each token's experts and gate weights, one workgroup per token,
// one thread per expert (E ≤ 256): the top-k picks are parallel argmax reductions, so a decode step
// pays ~k·log2(256) barriers instead of one thread's k·E serial loop (~80 µs on an H100).
// With the default knobs (softmax, τ = 1, no noise, no bias, no mask, one group, scale 1) this is
// exactly HF's softmax → top-k (ties to the lower index, like torch.topk) → optional renormalise;
// Mixtral's "softmax over the top-k logits" is the renormalised case.
// The knobs, in the order they apply:
//   z = logits / τ + N(0, σ²) noise (seeded by seed, position, expert);  masked experts: z = −∞
//   score = softmax(z) or sigmoid(z)
//   choice = score + layer bias + bias (both steer selection only; weights stay unbiased, as in
//   DeepSeek-V3, whose per-layer e_score_correction_bias is the layer bias; `bias` is the knob)
//   group-limited: keep the topk_group best of n_group groups (group value = its best choice, or
//   the sum of its two best with GROUP_TOP2), choose top-k inside them
//   weight = score of each chosen expert, renormalised if asked, times routed scale
struct Params {
  tokens: u32, experts: u32, k: u32, flags: u32,
  temperature: f32, noise_std: f32, seed: u32, pos0: u32,
  n_group: u32, topk_group: u32, scale: f32, max_tiles: u32,
}
const RENORM = 1u;
const SIGMOID = 2u;
const GROUP_TOP2 = 4u;
const HAS_BIAS = 8u;
const HAS_MASK = 16u;
const HAS_LAYER_BIAS = 32u;

#include "reduce.wgsl"
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;     // [T, E]
@group(0) @binding(2) var<storage, read> bias: array<f32>;       // [E]
@group(0) @binding(3) var<storage, read> enabled: array<u32>;    // [E] 0 = masked (ablated)
@group(0) @binding(4) var<storage, read_write> probs: array<f32>; // [T, E] scores
@group(0) @binding(5) var<storage, read_write> idx: array<u32>;   // [T, k]
@group(0) @binding(6) var<storage, read_write> wts: array<f32>;   // [T, k]
@group(0) @binding(7) var<storage, read> layer_bias: array<f32>; // [E] the checkpoint's, per layer

const NEG = -3.402823e38;
const NONE = 0xffffffffu;
const DROPPED = 0xffffffffu;

// main_plan only (one token): the expert grouping moe_plan.wgsl would make from idx, so a decode
// step skips that dispatch. Same layout and order as moe_plan's outputs, except the per-expert
// counts (routing statistics for training, which routes many tokens through moe_plan): without
// them the entry point binds 10 storage buffers, within what more adapters allow than 11.
@group(0) @binding(8) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(9) var<storage, read_write> slot_pos: array<u32>;
@group(0) @binding(10) var<storage, read_write> tiles: array<vec4<u32>>;

fn hash(a: u32) -> u32 {
  var s = a * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
fn unit(a: u32) -> f32 { return (f32(hash(a) >> 8u) + 0.5) / 16777216.0; } // (0, 1)
fn gaussian(pos: u32, e: u32) -> f32 {
  let h = hash(p.seed ^ hash(pos * 0x9e3779b9u + e));
  let u1 = unit(h);
  let u2 = unit(h ^ 0x85ebca6bu);
  return sqrt(-2.0 * log(u1)) * cos(6.2831853 * u2);
}
fn is_on(e: u32) -> bool { return e < p.experts && ((p.flags & HAS_MASK) == 0u || enabled[e] != 0u); }

var<workgroup> choice: array<f32, 256>; // score + bias of each expert (what selection compares)
var<workgroup> scores: array<f32, 256>; // thread 0 reads the chosen experts' weights from here
var<workgroup> arg_v: array<f32, 256>;
var<workgroup> arg_i: array<u32, 256>;
var<workgroup> keep_group: array<u32, 64>;
var<workgroup> group_val: array<f32, 64>;
var<workgroup> picked: array<u32, 256>; // the slot (choice rank) an expert got, NONE if not chosen

// (va, ia) beats (vb, ib): a real candidate over none, then the higher value, ties to the lower
// index (torch.topk's order).
fn beats(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  if (ia == NONE) { return false; }
  if (ib == NONE) { return true; }
  return va > vb || (va == vb && ia < ib);
}

// Best (value, index) over the workgroup; every thread gets it. Call from uniform control flow.
fn wg_argmax(v: f32, i: u32, lid: u32) -> u32 {
  arg_v[lid] = v;
  arg_i[lid] = i;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s && beats(arg_v[lid + s], arg_i[lid + s], arg_v[lid], arg_i[lid])) {
      arg_v[lid] = arg_v[lid + s];
      arg_i[lid] = arg_i[lid + s];
    }
    workgroupBarrier();
  }
  let r = arg_i[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = row_of(wg, nwg);
  if (t >= p.tokens) { return; } // whole workgroup leaves together: uniform
  route_token(t, lid);
}

// Routing of one token (tokens = 1, one workgroup) followed by its plan: sorted, slot_pos and
// tiles exactly as moe_plan.wgsl writes them for these k slots (experts ascending, one row
// each; a token's k experts are distinct, so a capacity ≥ 1 never drops one).
@compute @workgroup_size(256)
fn main_plan(@builtin(local_invocation_index) lid: u32) {
  route_token(0u, lid);
  workgroupBarrier();
  if (lid == 0u) {
    var o = 0u;
    for (var x = 0u; x < p.experts; x++) {
      let s = picked[x];
      if (s == NONE) { continue; }
      sorted[o] = s;
      slot_pos[s] = o;
      tiles[o] = vec4<u32>(x, o, o + 1u, 1u);
      o++;
    }
    for (var j = 0u; j < p.k; j++) { if (idx[j] == NONE) { slot_pos[j] = DROPPED; } }
    for (var i = o; i < p.max_tiles; i++) { tiles[i] = vec4<u32>(0u, 0u, 0u, 0u); }
  }
}

fn route_token(t: u32, lid: u32) {
  let e = lid;
  let on = is_on(e);
  let base = t * p.experts;

  var z = NEG;
  if (on) {
    z = logits[base + e] / p.temperature;
    if (p.noise_std > 0.0) { z += p.noise_std * gaussian(p.pos0 + t, e); }
  }
  var score = 0.0;
  if ((p.flags & SIGMOID) != 0u) {
    score = select(0.0, 1.0 / (1.0 + exp(-z)), on);
  } else {
    let mx = wg_max(z, lid);
    let v = select(0.0, exp(z - mx), on);
    let s = wg_sum(v, lid);
    score = select(0.0, v / s, s > 0.0); // every expert masked: all scores 0
  }
  if (e < p.experts) { probs[base + e] = score; }
  var c = score;
  if ((p.flags & HAS_LAYER_BIAS) != 0u && e < p.experts) { c += layer_bias[e]; }
  if ((p.flags & HAS_BIAS) != 0u && e < p.experts) { c += bias[e]; }
  choice[lid] = c;
  scores[lid] = score;
  var allowed = on;

  if (p.n_group > 1u) {
    workgroupBarrier();
    let gsize = p.experts / p.n_group;
    // Group value: its best choice, or the sum of its best two with GROUP_TOP2.
    if (lid < p.n_group) {
      var b1 = NEG;
      var b2 = NEG;
      for (var x = lid * gsize; x < (lid + 1u) * gsize; x++) {
        if (!is_on(x)) { continue; }
        let cx = choice[x];
        if (cx > b1) { b2 = b1; b1 = cx; } else if (cx > b2) { b2 = cx; }
      }
      group_val[lid] = select(b1, b1 + select(0.0, b2, b2 > NEG), (p.flags & GROUP_TOP2) != 0u);
    }
    workgroupBarrier();
    if (lid == 0u) {
      for (var g = 0u; g < p.n_group; g++) { keep_group[g] = 0u; }
      for (var j = 0u; j < p.topk_group; j++) {
        var best = NONE;
        var bv = NEG;
        for (var g = 0u; g < p.n_group; g++) {
          if (keep_group[g] == 0u && (best == NONE || group_val[g] > bv)) { bv = group_val[g]; best = g; }
        }
        if (best != NONE) { keep_group[best] = 1u; }
      }
    }
    workgroupBarrier();
    if (allowed && keep_group[e / gsize] == 0u) { allowed = false; }
  }

  var sum = 0.0;
  var mine = NONE;
  for (var j = 0u; j < p.k; j++) {
    // Fewer allowed experts than k (heavy masking): the slot goes to no expert, with weight 0.
    let best = wg_argmax(c, select(NONE, e, allowed), lid);
    if (best == e) { allowed = false; mine = j; }
    if (lid == 0u) {
      if (best == NONE) {
        idx[t * p.k + j] = NONE;
        wts[t * p.k + j] = 0.0;
      } else {
        idx[t * p.k + j] = best;
        wts[t * p.k + j] = scores[best];
      }
    }
  }
  // Thread 0 wrote every weight: it renormalises them (in its own writes' order, no barrier needed).
  if (lid == 0u) {
    for (var j = 0u; j < p.k; j++) { sum += wts[t * p.k + j]; }
    let norm = select(1.0, 1.0 / max(sum, 1e-20), (p.flags & RENORM) != 0u && sum > 0.0);
    for (var j = 0u; j < p.k; j++) { wts[t * p.k + j] *= norm * p.scale; }
  }
  picked[lid] = mine;
}
