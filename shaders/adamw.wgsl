// AdamW with clipping by global gradient norm, f32, over flat parameter buffers (PyTorch's
// torch.optim.AdamW after torch.nn.utils.clip_grad_norm_):
//   sumsq:  partials[slot + wg] = Σ g² over a grid-strided share of one gradient buffer; each
//           buffer gets its own slots, so no atomics and a fixed summation order
//   finish: one workgroup: norm = √Σ partials; clip = min(1, max_norm / (norm + 1e-6)) (1 when
//           max_norm ≤ 0); stats = [norm, clip, non-finite flag]
//   step:   g ← g · clip; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1 − lr·wd);
//           p ← p − lr · (m / bc1) / (√(v / bc2) + eps), bc = 1 − β^step from the host.
//           When the norm was not finite (a NaN or overflowing batch) nothing changes: a bad batch
//           must not poison the weights and both moments for the rest of the run.
#include "bwd_reduce.wgsl"
struct Params {
  n: u32, offset: u32, slot: u32, flags: u32,
  lr: f32, beta1: f32, beta2: f32, eps: f32,
  wd: f32, bc1: f32, bc2: f32, max_norm: f32,
}
const USE_CLIP = 1u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>; // [norm, clip, non-finite, _]
@group(0) @binding(4) var<storage, read_write> params: array<f32>;
@group(0) @binding(5) var<storage, read_write> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn sumsq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wg.x * 256u + lid; i < p.n; i += nwg.x * 256u) {
    let g = grads[p.offset + i];
    s = fma(g, g, s);
  }
  let total = bwd_sum(s, lid);
  if (lid == 0u) { partials[p.slot + wg.x] = total; }
}

// Inf and NaN have every exponent bit set.
fn finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += 256u) { s += partials[i]; }
  let norm = sqrt(bwd_sum(s, lid));
  if (lid == 0u) {
    stats[0] = norm;
    stats[1] = select(1.0, min(1.0, p.max_norm / (norm + 1e-6)), p.max_norm > 0.0);
    stats[2] = select(1.0, 0.0, finite(norm));
  }
}

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= p.n) { return; }
  var clip = 1.0;
  if ((p.flags & USE_CLIP) != 0u) {
    if (stats[2] != 0.0) { return; }
    clip = stats[1];
  }
  let j = p.offset + i;
  let g = grads[j] * clip;
  let mi = p.beta1 * m[j] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[j] + (1.0 - p.beta2) * g * g;
  m[j] = mi;
  v[j] = vi;
  let decayed = params[j] * (1.0 - p.lr * p.wd);
  params[j] = decayed - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
}
