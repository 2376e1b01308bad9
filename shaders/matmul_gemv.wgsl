// Matrix-vector products for few rows (decode): y[m, n] = (x[m, :] · W[n, :] (+ bias[n])) · alpha for
// m < M ≤ 8. A workgroup owns 8 output columns; 32 threads per column stride over K with coalesced
// loads and reduce in workgroup memory. No tiles to fill, so almost no wasted work at M = 1, which
// is what the 64×64-tiled kernel would spend 63/64 of its time on.
struct Params { M: u32, N: u32, K: u32, has_bias: u32, alpha: f32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
#include "wload_${WFMT}.wgsl"
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const COLS = 8u;
const LANES = 32u;
var<workgroup> part: array<f32, 2048>; // [M ≤ 8][COLS][LANES]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let col = lid / LANES;
  let lane = lid % LANES;
  let n = (wg.y * nwg.x + wg.x) * COLS + col;
  var acc: array<f32, 8>;
  if (n < p.N) {
    for (var k = lane; k < p.K; k += LANES) {
      let wk = wv(n * p.K + k);
      for (var m = 0u; m < p.M; m++) { acc[m] = fma(x[m * p.K + k], wk, acc[m]); }
    }
  }
  for (var m = 0u; m < 8u; m++) { part[(m * COLS + col) * LANES + lane] = acc[m]; }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < p.M; m++) {
        let i = (m * COLS + col) * LANES + lane;
        part[i] += part[i + s];
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) {
      var v = part[(m * COLS + col) * LANES];
      if (p.has_bias != 0u) { v += bias[n]; }
      y[m * p.N + n] = v * p.alpha;
    }
  }
}

// Software adapters (SwiftShader) run invocations on CPU cores, where each barrier is a context
// switch: there one thread per output column, looping over all of K with no reduction, is ~10×
// faster. Real GPUs prefer `main` (coalesced loads across the 32 lanes).
@compute @workgroup_size(64)
fn per_column(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let n = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (n >= p.N) { return; }
  var acc: array<f32, 8>;
  for (var k = 0u; k < p.K; k++) {
    let wk = wv(n * p.K + k);
    for (var m = 0u; m < p.M; m++) { acc[m] = fma(x[m * p.K + k], wk, acc[m]); }
  }
  for (var m = 0u; m < p.M; m++) {
    var v = acc[m];
    if (p.has_bias != 0u) { v += bias[n]; }
    y[m * p.N + n] = v * p.alpha;
  }
}

// K % 8 == 0 (real GPUs): each lane takes 8 consecutive weights per step through the loader's
// wdot8 — one u32 of int4, two of int8 — and each warp computes ROWS output columns at once, so
// one load of x serves four weight rows and four independent weight loads are in flight per lane.
// Workgroup: 8 warps × 4 = 32 columns.
const ROWS = 4u;
var<workgroup> part4: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn main8(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let warp = lid / LANES;
  let lane = lid % LANES;
  let n0 = ((wg.y * nwg.x + wg.x) * COLS + warp) * ROWS;
  var acc: array<vec4<f32>, 8>;
  for (var k = lane * 8u; k < p.K; k += LANES * 8u) {
    for (var m = 0u; m < p.M; m++) {
      let xb = m * p.K + k;
      let xa = vec4<f32>(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u]);
      let xc = vec4<f32>(x[xb + 4u], x[xb + 5u], x[xb + 6u], x[xb + 7u]);
      for (var j = 0u; j < ROWS; j++) {
        if (n0 + j < p.N) { acc[m][j] += wdot8((n0 + j) * p.K + k, xa, xc); }
      }
    }
  }
  for (var m = 0u; m < p.M; m++) {
    part4[lid] = acc[m];
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
      if (lane < s) { part4[lid] += part4[lid + s]; }
      workgroupBarrier();
    }
    let n = n0 + lane;
    if (lane < ROWS && n < p.N) {
      var v = part4[warp * LANES][lane];
      if (p.has_bias != 0u) { v += bias[n]; }
      y[m * p.N + n] = v * p.alpha;
    }
    workgroupBarrier();
  }
}
