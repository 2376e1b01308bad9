// MoE routing for one token per thread: scores = softmax(logits) over E experts, pick the k largest
// (ties go to the lower index, as torch.topk does), optionally renormalise the k weights to sum 1.
// Mixtral's "softmax over the top-k logits" is the renormalised case of the same computation.
struct Params { tokens: u32, experts: u32, k: u32, renorm: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;     // [T, E]
@group(0) @binding(2) var<storage, read_write> probs: array<f32>; // [T, E] softmax scores
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;   // [T, k]
@group(0) @binding(4) var<storage, read_write> wts: array<f32>;   // [T, k]

const MAX_E = 256u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.y * nwg.x * 64u + gid.x;
  if (t >= p.tokens) { return; }
  let base = t * p.experts;
  var mx = -3.402823e38;
  for (var e = 0u; e < p.experts; e++) { mx = max(mx, logits[base + e]); }
  var s = 0.0;
  for (var e = 0u; e < p.experts; e++) { let v = exp(logits[base + e] - mx); probs[base + e] = v; s += v; }
  let inv = 1.0 / s;
  for (var e = 0u; e < p.experts; e++) { probs[base + e] *= inv; }

  var taken: array<u32, 8>; // bitmask over up to MAX_E experts
  var sum = 0.0;
  for (var j = 0u; j < p.k; j++) {
    var best = 0u;
    var bv = -1.0;
    for (var e = 0u; e < p.experts; e++) {
      let v = probs[base + e];
      let free = (taken[e >> 5u] & (1u << (e & 31u))) == 0u;
      if (free && v > bv) { bv = v; best = e; }
    }
    taken[best >> 5u] |= 1u << (best & 31u);
    idx[t * p.k + j] = best;
    wts[t * p.k + j] = bv;
    sum += bv;
  }
  if (p.renorm != 0u) {
    for (var j = 0u; j < p.k; j++) { wts[t * p.k + j] /= sum; }
  }
}
