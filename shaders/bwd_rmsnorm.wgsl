// Backward of y = x · r · weight, r = 1/sqrt(mean(x²) + eps) per row (rmsnorm.wgsl), f32:
//   grad_x: one workgroup per row: dx = r·weight·dy − x · r³/dim · Σ_j dy_j·weight_j·x_j, and r
//           saved to rstd[row] for grad_w
//   grad_w: dweight[i] (+)= Σ_rows dy[r, i]·x[r, i]·rstd[r]; 32 columns per workgroup, 8 lanes each
//           striding over the rows, the lanes' sums added in a fixed order (no float atomics)
// grad_w reads what grad_x wrote: record grad_x first (a later dispatch sees an earlier one's writes).
#include "bwd_reduce.wgsl"
struct Params { rows: u32, dim: u32, eps: f32, flags: u32 }
const ACC_DX = 1u;
const ACC_DW = 2u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dweight: array<f32>;

@compute @workgroup_size(256)
fn grad_x(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let row = bwd_group(wg, nwg);
  if (row >= p.rows) { return; } // whole workgroup leaves together: uniform
  let base = row * p.dim;
  var ss = 0.0;
  var d = 0.0;
  for (var i = lid; i < p.dim; i += 256u) {
    let v = x[base + i];
    ss = fma(v, v, ss);
    d = fma(dy[base + i] * weight[i], v, d);
  }
  let inv = inverseSqrt(bwd_sum(ss, lid) / f32(p.dim) + p.eps);
  let c = inv * inv * inv * bwd_sum(d, lid) / f32(p.dim);
  if (lid == 0u) { rstd[row] = inv; }
  let add = (p.flags & ACC_DX) != 0u;
  for (var i = lid; i < p.dim; i += 256u) {
    let g = inv * weight[i] * dy[base + i] - x[base + i] * c;
    dx[base + i] = select(g, dx[base + i] + g, add);
  }
}

var<workgroup> part: array<f32, 256>; // [8 lanes][32 columns]
@compute @workgroup_size(32, 8)
fn grad_w(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = bwd_group(wg, nwg) * 32u + lid.x;
  var s = 0.0;
  if (col < p.dim) {
    for (var r = lid.y; r < p.rows; r += 8u) { s = fma(dy[r * p.dim + col] * x[r * p.dim + col], rstd[r], s); }
  }
  part[lid.y * 32u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && col < p.dim) {
    var t = 0.0;
    for (var l = 0u; l < 8u; l++) { t += part[l * 32u + lid.x]; }
    dweight[col] = select(t, dweight[col] + t, (p.flags & ACC_DW) != 0u);
  }
}
