// Row-wise softmax (max-subtracted, f32), one row per workgroup.
#include "reduce.wgsl"
struct Params { rows: u32, cols: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = -3.402823e38;
  for (var i = lid; i < p.cols; i += 256u) { m = max(m, x[base + i]); }
  let mx = wg_max(m, lid);
  var s = 0.0;
  for (var i = lid; i < p.cols; i += 256u) { s += exp(x[base + i] - mx); }
  let inv = 1.0 / wg_sum(s, lid);
  for (var i = lid; i < p.cols; i += 256u) { y[base + i] = exp(x[base + i] - mx) * inv; }
}
