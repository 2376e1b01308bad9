// Weights as int8, 4 per u32 (byte j of word i holds element 4i + j), times one f32 scale per
// ${GROUP} consecutive elements of a row (src/engine/quant/pack.ts writes this layout).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
@group(0) @binding(${S_BINDING}) var<storage, read> wscale: array<f32>;
fn wv(i: u32) -> f32 {
  let q = i32(w[i >> 2u] << (24u - ((i & 3u) << 3u))) >> 24u; // sign-extended byte
  return f32(q) * wscale[i / ${GROUP}u];
}
