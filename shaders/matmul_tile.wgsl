// The register-blocked core shared by the tiled matmuls: a 64×64 output tile per workgroup of
// 16×16 threads, each owning a 4×4 block, K stepped by 16 through workgroup memory (k-major, so a
// thread's 4 rows / 4 columns are adjacent). The caller fills As/Bs for a K step, then calls
// tile_mac between two barriers.
const BM = 64u;
const BN = 64u;
const BK = 16u;
var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

fn tile_mac(acc: ptr<function, array<f32, 16>>, ty: u32, tx: u32) {
  for (var kk = 0u; kk < BK; kk++) {
    let av = vec4<f32>(As[kk * BM + ty * 4u], As[kk * BM + ty * 4u + 1u], As[kk * BM + ty * 4u + 2u], As[kk * BM + ty * 4u + 3u]);
    let bv = vec4<f32>(Bs[kk * BN + tx * 4u], Bs[kk * BN + tx * 4u + 1u], Bs[kk * BN + tx * 4u + 2u], Bs[kk * BN + tx * 4u + 3u]);
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) { (*acc)[i * 4u + j] = fma(av[i], bv[j], (*acc)[i * 4u + j]); }
    }
  }
}
