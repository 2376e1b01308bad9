// The register-blocked core shared by the tiled matmuls: a 64×64 output tile per workgroup of
// 8×8 threads, each owning an 8×8 block (rows 8·ty …, columns 8·tx …), K stepped by 16 through
// workgroup memory stored k-major as vec4s, so one K step costs a thread four vec4 reads for 64
// FMAs (a 4×4 block per thread gave 2 FMAs per scalar read and ~24 % of the H100's f32 peak).
// Per K step the caller gathers, in thread li, the 16 values of tile row li (A) and tile column
// li (B), calls tile_fill, a barrier, tile_mac, a barrier.
const BM = 64u;
const BN = 64u;
const BK = 16u;
var<workgroup> As: array<vec4<f32>, 256>; // [BK][BM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [BK][BN / 4]

fn tile_fill(li: u32, av: ptr<function, array<f32, 16>>, bv: ptr<function, array<f32, 16>>) {
  for (var kk = 0u; kk < BK; kk++) {
    As[kk * 16u + li / 4u][li % 4u] = (*av)[kk];
    Bs[kk * 16u + li / 4u][li % 4u] = (*bv)[kk];
  }
}

// acc[i·2 + h] holds row 8·ty + i, columns 8·tx + 4h … 8·tx + 4h + 3.
fn tile_mac(acc: ptr<function, array<vec4<f32>, 16>>, ty: u32, tx: u32) {
  for (var kk = 0u; kk < BK; kk++) {
    let a0 = As[kk * 16u + ty * 2u];
    let a1 = As[kk * 16u + ty * 2u + 1u];
    let b0 = Bs[kk * 16u + tx * 2u];
    let b1 = Bs[kk * 16u + tx * 2u + 1u];
    for (var i = 0u; i < 4u; i++) {
      (*acc)[i * 2u] = fma(vec4<f32>(a0[i]), b0, (*acc)[i * 2u]);
      (*acc)[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, (*acc)[i * 2u + 1u]);
      (*acc)[(i + 4u) * 2u] = fma(vec4<f32>(a1[i]), b0, (*acc)[(i + 4u) * 2u]);
      (*acc)[(i + 4u) * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, (*acc)[(i + 4u) * 2u + 1u]);
    }
  }
}
