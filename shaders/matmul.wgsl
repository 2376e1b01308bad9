// y[M,N] = (x[M,K] · W[N,K]ᵀ (+ bias[N])) · alpha — the HF nn.Linear layout, f32.
// 64×64 output tile per workgroup, 8×8 threads each owning an 8×8 block (matmul_tile.wgsl). Out-of-range rows/cols/k read as zero, so any M, N, K works.
struct Params { M: u32, N: u32, K: u32, has_bias: u32, alpha: f32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
#include "wload_${WFMT}.wgsl"
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

#include "matmul_tile.wgsl"

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let lr = row0 + li;
  let lc = col0 + li;
  var acc: array<vec4<f32>, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    var av: array<f32, 16>;
    var bv: array<f32, 16>;
    for (var kk = 0u; kk < BK; kk++) {
      let gk = k0 + kk;
      av[kk] = select(0.0, x[lr * p.K + gk], lr < p.M && gk < p.K);
      bv[kk] = select(0.0, wv(lc * p.K + gk), lc < p.N && gk < p.K);
    }
    tile_fill(li, &av, &bv);
    workgroupBarrier();
    tile_mac(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + lid.y * 8u + i;
    if (r >= p.M) { continue; }
    for (var j = 0u; j < 8u; j++) {
      let c = col0 + lid.x * 8u + j;
      if (c >= p.N) { continue; }
      var v = acc[i * 2u + j / 4u][j % 4u];
      if (p.has_bias != 0u) { v += bias[c]; }
      y[r * p.N + c] = v * p.alpha;
    }
  }
}
