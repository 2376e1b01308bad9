// y = x / sqrt(mean(x²) + eps) * weight, one row per workgroup (HF Qwen/Mixtral RMSNorm, f32).
#include "reduce.wgsl"
struct Params { rows: u32, dim: u32, eps: f32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= p.rows) { return; } // whole workgroup leaves together: uniform
  let base = row * p.dim;
  var ss = 0.0;
  for (var i = lid; i < p.dim; i += 256u) { let v = x[base + i]; ss = fma(v, v, ss); }
  let total = wg_sum(ss, lid);
  let inv = inverseSqrt(total / f32(p.dim) + p.eps);
  for (var i = lid; i < p.dim; i += 256u) { y[base + i] = x[base + i] * inv * weight[i]; }
}
