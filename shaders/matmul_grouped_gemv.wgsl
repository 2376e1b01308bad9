// The routed-expert matmul for few slots (decode): same tile table as matmul_grouped.wgsl (one
// expert per tile), but each workgroup computes 8 output columns for the tile's rows as dot
// products, 32 threads per column, instead of filling a 64×64 tile for one or two rows.
// GATHER=1: row r reads token x[sorted[r] / topk]; GATHER=0: row r reads a[r]. SWIGLU only in main8.
struct Params { N: u32, K: u32, topk: u32, max_tiles: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> sorted: array<u32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
#include "wload_${WFMT}.wgsl"
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const COLS = 8u;
const LANES = 32u;
var<workgroup> part: array<f32, 256>;

fn a_row(r: u32) -> u32 {
  if (${GATHER}u == 1u) { return sorted[r] / p.topk; }
  return r;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let tile_id = wg.y + wg.z * nwg.y;
  if (tile_id >= p.max_tiles) { return; }
  let tile = tiles[tile_id];
  if (tile.w == 0u) { return; }
  let col = lid / LANES;
  let lane = lid % LANES;
  let n = wg.x * COLS + col;
  let wbase = tile.x * p.N * p.K;
  for (var r = tile.y; r < tile.z; r++) {
    let arow = a_row(r) * p.K;
    var acc = 0.0;
    if (n < p.N) {
      for (var k = lane; k < p.K; k += LANES) { acc = fma(a[arow + k], wv(wbase + n * p.K + k), acc); }
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
      if (lane < s) { part[lid] += part[lid + s]; }
      workgroupBarrier();
    }
    if (lane == 0u && n < p.N) { out[r * p.N + n] = part[lid]; }
    workgroupBarrier();
  }
}

// Thread per output column, no barriers: the variant for software adapters (see matmul_gemv.wgsl).
@compute @workgroup_size(64)
fn per_column(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let tile_id = wg.y + wg.z * nwg.y;
  if (tile_id >= p.max_tiles) { return; }
  let tile = tiles[tile_id];
  let n = wg.x * 64u + lid;
  if (tile.w == 0u || n >= p.N) { return; }
  let wrow = tile.x * p.N * p.K + n * p.K;
  for (var r = tile.y; r < tile.z; r++) {
    let arow = a_row(r) * p.K;
    var acc = 0.0;
    for (var k = 0u; k < p.K; k++) { acc = fma(a[arow + k], wv(wrow + k), acc); }
    out[r * p.N + n] = acc;
  }
}

// Row r's inputs k … k+7 as two vec4s. With SWIGLU (the down projection) `a` holds the gate/up
// rows [r, 2K] and the input is silu(gate) · up computed here, which saves the SwiGLU dispatch.
fn x8(r: u32, k: u32) -> array<vec4<f32>, 2> {
  var v: array<f32, 8>;
  if (${SWIGLU}u == 1u) {
    let g0 = r * 2u * p.K + k;
    for (var j = 0u; j < 8u; j++) {
      let g = a[g0 + j];
      v[j] = g / (1.0 + exp(-g)) * a[g0 + p.K + j];
    }
  } else {
    let b = a_row(r) * p.K + k;
    for (var j = 0u; j < 8u; j++) { v[j] = a[b + j]; }
  }
  return array<vec4<f32>, 2>(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// K % 8 == 0 (real GPUs): 8 consecutive weights per lane per step through wdot8, and each warp
// computes ROWS output columns at once, so the x values it loads serve four weight rows and four
// independent weight loads are in flight per lane (one column per warp left the H100 waiting on
// load latency: ~48 µs for 10 MB of int4 experts). Workgroup: 8 warps × 4 = 32 columns.
const ROWS = 4u;
var<workgroup> part4: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn main8(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let tile_id = wg.y + wg.z * nwg.y;
  if (tile_id >= p.max_tiles) { return; }
  let tile = tiles[tile_id];
  if (tile.w == 0u) { return; }
  let warp = lid / LANES;
  let lane = lid % LANES;
  let n0 = (wg.x * COLS + warp) * ROWS;
  let wbase = tile.x * p.N * p.K;
  for (var r = tile.y; r < tile.z; r++) {
    var acc = vec4<f32>(0.0);
    for (var k = lane * 8u; k < p.K; k += LANES * 8u) {
      let x = x8(r, k);
      for (var j = 0u; j < ROWS; j++) {
        if (n0 + j < p.N) { acc[j] += wdot8(wbase + (n0 + j) * p.K + k, x[0], x[1]); }
      }
    }
    part4[lid] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
      if (lane < s) { part4[lid] += part4[lid + s]; }
      workgroupBarrier();
    }
    if (lane < ROWS && n0 + lane < p.N) { out[r * p.N + n0 + lane] = part4[warp * LANES][lane]; }
    workgroupBarrier();
  }
}
