// y[M,N] = (x[M,K] · W[N,K]ᵀ (+ bias[N])) · alpha — the HF nn.Linear layout, f32.
// 64×64 output tile per workgroup, 16×16 threads each owning a 4×4 block, K stepped by 16 through
// workgroup memory. Out-of-range rows/cols/k read as zero, so any M, N, K works.
struct Params { M: u32, N: u32, K: u32, has_bias: u32, alpha: f32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
#include "wload_${WFMT}.wgsl"
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

#include "matmul_tile.wgsl"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      let r = e / BK;
      let kk = e % BK;
      let gk = k0 + kk;
      let gr = row0 + r;
      var a = 0.0;
      if (gr < p.M && gk < p.K) { a = x[gr * p.K + gk]; }
      As[kk * BM + r] = a;
      let gc = col0 + r;
      var b = 0.0;
      if (gc < p.N && gk < p.K) { b = wv(gc * p.K + gk); }
      Bs[kk * BN + r] = b;
    }
    workgroupBarrier();
    tile_mac(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c >= p.N) { continue; }
      var v = acc[i * 4u + j];
      if (p.has_bias != 0u) { v += bias[c]; }
      y[r * p.N + c] = v * p.alpha;
    }
  }
}
