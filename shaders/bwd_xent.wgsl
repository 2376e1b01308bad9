// Softmax cross-entropy over logits [T, V] with targets [T] (i32; IGNORE = −100 adds nothing),
// fused with its gradient, f32:
//   main, one workgroup per row: count = rows not ignored (every workgroup counts them: T is small
//     next to V, and it spares a dispatch); ls = log Σ exp(z − max);
//     losses[t] = ls − (z[target] − max);  dlogits[t, c] = grad_scale · (exp(z_c − max − ls) − [c = target]) / count
//     (all zero for an ignored row). A target outside [0, V) counts as ignored: the host checks
//     targets it uploads; the kernel must not read out of bounds on the ones it did not.
//   mean, one workgroup: loss[0] = Σ losses / count (0 when every row is ignored, not NaN).
// With LOGITS = dlogits the gradient overwrites the logits in place (a [T, V] buffer at a
// 150 k vocabulary is large); each element is read then written by the same thread, and the target
// logit is read before the first barrier that precedes any write.
#include "bwd_reduce.wgsl"
struct Params { tokens: u32, vocab: u32, _a: u32, grad_scale: f32 }
const IGNORE = -100;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;

fn z(i: u32) -> f32 { return ${LOGITS}[i]; }
fn counted(y: i32) -> bool { return y != IGNORE && y >= 0 && u32(y) < p.vocab; }

fn count_rows(lid: u32) -> f32 {
  var c = 0.0;
  for (var i = lid; i < p.tokens; i += 256u) { c += select(0.0, 1.0, counted(targets[i])); }
  return bwd_sum(c, lid);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = bwd_group(wg, nwg);
  if (t >= p.tokens) { return; } // whole workgroup leaves together: uniform
  let base = t * p.vocab;
  let y = targets[t];
  let valid = counted(y);
  var zy = 0.0;
  if (valid) { zy = z(base + u32(y)); }
  let count = count_rows(lid);
  var mx = -3.402823e38;
  for (var c = lid; c < p.vocab; c += 256u) { mx = max(mx, z(base + c)); }
  mx = bwd_max(mx, lid);
  var se = 0.0;
  for (var c = lid; c < p.vocab; c += 256u) { se += exp(z(base + c) - mx); }
  // Shifted values z − max are exact in f32 (Sterbenz) even at logits near 1e4, where folding max
  // into one f32 log-sum-exp would cost ~1e-3 absolute in every exponent.
  let ls = log(bwd_sum(se, lid));
  let coef = select(0.0, p.grad_scale / max(count, 1.0), valid);
  for (var c = lid; c < p.vocab; c += 256u) {
    let hot = select(0.0, 1.0, valid && c == u32(y));
    dlogits[base + c] = coef * (exp(z(base + c) - mx - ls) - hot);
  }
  if (lid == 0u) { losses[t] = select(0.0, ls - (zy - mx), valid); }
}

@compute @workgroup_size(256)
fn mean(@builtin(local_invocation_index) lid: u32) {
  let count = count_rows(lid);
  var s = 0.0;
  for (var i = lid; i < p.tokens; i += 256u) { s += losses[i]; }
  let total = bwd_sum(s, lid);
  if (lid == 0u) { loss[0] = select(0.0, total / count, count > 0.0); }
}
