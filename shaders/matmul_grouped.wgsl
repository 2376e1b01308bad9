// Expert matmul over slots grouped by expert (see moe_plan.wgsl): for each tile (expert e, rows
// [start, end) of the sorted order), out[r, :] = A_r · W[e]ᵀ with W stacked [E, N, K].
// GATHER=1: A_r is the token row x[sorted[r] / topk] (first expert matmul, reads the normed hidden
// state); GATHER=0: A_r is a[r] (second matmul, rows already in sorted order).
// Same 64×64 tiling as matmul.wgsl; workgroups beyond the used tiles exit at once.
struct Params { N: u32, K: u32, topk: u32, max_tiles: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> sorted: array<u32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
#include "wload_${WFMT}.wgsl"
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

#include "matmul_tile.wgsl"

fn a_row(r: u32) -> u32 {
  if (${GATHER}u == 1u) { return sorted[r] / p.topk; }
  return r;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile_id = wg.y + wg.z * nwg.y;
  if (tile_id >= p.max_tiles) { return; }
  let tile = tiles[tile_id];
  if (tile.w == 0u) { return; }
  let e = tile.x;
  let row0 = tile.y;
  let row_end = tile.z;
  let col0 = wg.x * BN;
  let wbase = e * p.N * p.K;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let el = li + i * 256u;
      let r = el / BK;
      let kk = el % BK;
      let gk = k0 + kk;
      let gr = row0 + r;
      var av = 0.0;
      if (gr < row_end && gk < p.K) { av = a[a_row(gr) * p.K + gk]; }
      As[kk * BM + r] = av;
      let gc = col0 + r;
      var bv = 0.0;
      if (gc < p.N && gk < p.K) { bv = wv(wbase + gc * p.K + gk); }
      Bs[kk * BN + r] = bv;
    }
    workgroupBarrier();
    tile_mac(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= row_end) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c < p.N) { out[r * p.N + c] = acc[i * 4u + j]; }
    }
  }
}
