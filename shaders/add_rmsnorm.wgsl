// The residual add and the next RMSNorm in one pass over the row (one dispatch instead of two —
// decode is bound by dispatch count, not by these few kilobytes):
//   h[row] += alpha · y[row];   x[row] = h[row] / sqrt(mean(h[row]²) + eps) · weight
#include "reduce.wgsl"
struct Params { rows: u32, dim: u32, eps: f32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= p.rows) { return; } // whole workgroup leaves together: uniform
  let base = row * p.dim;
  var ss = 0.0;
  for (var i = lid; i < p.dim; i += 256u) {
    let v = fma(p.alpha, y[base + i], h[base + i]);
    h[base + i] = v;
    ss = fma(v, v, ss);
  }
  let total = wg_sum(ss, lid);
  let inv = inverseSqrt(total / f32(p.dim) + p.eps);
  for (var i = lid; i < p.dim; i += 256u) { x[base + i] = h[base + i] * inv * weight[i]; }
}
