// Router: turns router logits into each token's experts and gate weights, one token per thread.
// With the default knobs (softmax, τ = 1, no noise, no bias, no mask, one group, scale 1) this is
// exactly HF's softmax → top-k (ties to the lower index, like torch.topk) → optional renormalise;
// Mixtral's "softmax over the top-k logits" is the renormalised case.
// The knobs, in the order they apply:
//   z = logits / τ + N(0, σ²) noise (seeded by seed, position, expert);  masked experts: z = −∞
//   score = softmax(z) or sigmoid(z)
//   choice = score + bias (bias steers selection only; weights stay unbiased, as in DeepSeek-V3)
//   group-limited: keep the topk_group best of n_group groups (group value = its best choice, or
//   the sum of its two best with GROUP_TOP2), choose top-k inside them
//   weight = score of each chosen expert, renormalised if asked, times routed scale
struct Params {
  tokens: u32, experts: u32, k: u32, flags: u32,
  temperature: f32, noise_std: f32, seed: u32, pos0: u32,
  n_group: u32, topk_group: u32, scale: f32, _pad: u32,
}
const RENORM = 1u;
const SIGMOID = 2u;
const GROUP_TOP2 = 4u;
const HAS_BIAS = 8u;
const HAS_MASK = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;     // [T, E]
@group(0) @binding(2) var<storage, read> bias: array<f32>;       // [E]
@group(0) @binding(3) var<storage, read> enabled: array<u32>;    // [E] 0 = masked (ablated)
@group(0) @binding(4) var<storage, read_write> probs: array<f32>; // [T, E] scores
@group(0) @binding(5) var<storage, read_write> idx: array<u32>;   // [T, k]
@group(0) @binding(6) var<storage, read_write> wts: array<f32>;   // [T, k]

const NEG = -3.402823e38;

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
fn is_on(e: u32) -> bool { return (p.flags & HAS_MASK) == 0u || enabled[e] != 0u; }

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.y * nwg.x * 64u + gid.x;
  if (t >= p.tokens) { return; }
  let base = t * p.experts;

  // Scores live in private arrays while this thread works on them: re-reading probs[] from global
  // memory inside the top-k loops made every step an L2 round trip (~85 µs per call on an H100).
  var sc: array<f32, 256>;
  var mx = NEG;
  for (var e = 0u; e < p.experts; e++) {
    var z = logits[base + e] / p.temperature;
    if (p.noise_std > 0.0) { z += p.noise_std * gaussian(p.pos0 + t, e); }
    if (!is_on(e)) { z = NEG; }
    sc[e] = z;
    mx = max(mx, z);
  }
  if ((p.flags & SIGMOID) != 0u) {
    for (var e = 0u; e < p.experts; e++) { sc[e] = select(0.0, 1.0 / (1.0 + exp(-sc[e])), is_on(e)); }
  } else {
    var s = 0.0;
    for (var e = 0u; e < p.experts; e++) {
      let v = select(0.0, exp(sc[e] - mx), is_on(e));
      sc[e] = v;
      s += v;
    }
    let inv = select(0.0, 1.0 / s, s > 0.0); // every expert masked: all scores 0
    for (var e = 0u; e < p.experts; e++) { sc[e] *= inv; }
  }
  // What selection compares: the score plus the per-expert bias.
  var ch: array<f32, 256>;
  for (var e = 0u; e < p.experts; e++) {
    probs[base + e] = sc[e];
    ch[e] = sc[e];
    if ((p.flags & HAS_BIAS) != 0u) { ch[e] += bias[e]; }
  }

  // Allowed experts: on, and (with groups) inside one of the best groups. Bitmask over ≤ 256.
  var allowed: array<u32, 8>;
  for (var e = 0u; e < p.experts; e++) { if (is_on(e)) { allowed[e >> 5u] |= 1u << (e & 31u); } }
  if (p.n_group > 1u) {
    let gsize = p.experts / p.n_group;
    var gval: array<f32, 64>;
    for (var g = 0u; g < p.n_group; g++) {
      var b1 = NEG;
      var b2 = NEG;
      for (var e = g * gsize; e < (g + 1u) * gsize; e++) {
        if (!is_on(e)) { continue; }
        let c = ch[e];
        if (c > b1) { b2 = b1; b1 = c; } else if (c > b2) { b2 = c; }
      }
      gval[g] = select(b1, b1 + select(0.0, b2, b2 > NEG), (p.flags & GROUP_TOP2) != 0u);
    }
    var keep: array<u32, 2>; // bitmask over ≤ 64 groups
    for (var j = 0u; j < p.topk_group; j++) {
      var best = 0xffffffffu;
      var bv = NEG;
      for (var g = 0u; g < p.n_group; g++) {
        let free = (keep[g >> 5u] & (1u << (g & 31u))) == 0u;
        if (free && (best == 0xffffffffu || gval[g] > bv)) { bv = gval[g]; best = g; }
      }
      keep[best >> 5u] |= 1u << (best & 31u);
    }
    for (var e = 0u; e < p.experts; e++) {
      let g = e / gsize;
      if ((keep[g >> 5u] & (1u << (g & 31u))) == 0u) { allowed[e >> 5u] &= ~(1u << (e & 31u)); }
    }
  }

  var sum = 0.0;
  for (var j = 0u; j < p.k; j++) {
    var best = 0xffffffffu;
    var bv = NEG;
    for (var e = 0u; e < p.experts; e++) {
      if ((allowed[e >> 5u] & (1u << (e & 31u))) == 0u) { continue; }
      let c = ch[e];
      if (best == 0xffffffffu || c > bv) { bv = c; best = e; }
    }
    // Fewer allowed experts than k (heavy masking): the slot goes to no expert, with weight 0.
    if (best == 0xffffffffu) {
      idx[t * p.k + j] = 0xffffffffu;
      wts[t * p.k + j] = 0.0;
      continue;
    }
    allowed[best >> 5u] &= ~(1u << (best & 31u));
    let w = sc[best];
    idx[t * p.k + j] = best;
    wts[t * p.k + j] = w;
    sum += w;
  }
  let norm = select(1.0, 1.0 / max(sum, 1e-20), (p.flags & RENORM) != 0u && sum > 0.0);
  for (var j = 0u; j < p.k; j++) { wts[t * p.k + j] *= norm * p.scale; }
}
