// Expert matmul over slots grouped by expert (see moe_plan.wgsl): for each tile (expert e, rows
// [start, end) of the sorted order), out[r, :] = A_r · W[e]ᵀ with W stacked [E, N, K].
// GATHER=1: A_r is the token row x[sorted[r] / topk] (first expert matmul, reads the normed hidden
// state); GATHER=0: A_r is a[r] (second matmul, rows already in sorted order).
// 64×64 output tiles (one expert's rows, as the plan cut them) computed by 8×8 threads that each
// own an 8×8 block: 64 FMAs per four vec4 reads of workgroup memory (a 4×4 block per thread gave
// 2 per scalar read and ~24 % of the f32 peak on an H100). Workgroups beyond the used tiles exit.
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

@compute @workgroup_size(8, 8)
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
  // Loading: thread li fills row/column li of the tile, 16 consecutive k each.
  let lr = row0 + li;
  let arow = select(0u, a_row(lr) * p.K, lr < row_end);
  let lc = col0 + li;
  var acc: array<vec4<f32>, 16>; // [8 rows][2 vec4 of columns]
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    var av: array<f32, 16>;
    var bv: array<f32, 16>;
    for (var kk = 0u; kk < BK; kk++) {
      let gk = k0 + kk;
      av[kk] = select(0.0, a[arow + gk], lr < row_end && gk < p.K);
      bv[kk] = select(0.0, wv(wbase + lc * p.K + gk), lc < p.N && gk < p.K);
    }
    tile_fill(li, &av, &bv);
    workgroupBarrier();
    tile_mac(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + lid.y * 8u + i;
    if (r >= row_end) { continue; }
    for (var j = 0u; j < 8u; j++) {
      let c = col0 + lid.x * 8u + j;
      if (c < p.N) { out[r * p.N + c] = acc[i * 2u + j / 4u][j % 4u]; }
    }
  }
}
