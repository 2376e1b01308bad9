// Weights as int4, 8 per u32 (nibble j of word i holds element 8i + j), times one f32 scale per
// ${GROUP} consecutive elements of a row (src/engine/quant/pack.ts writes this layout).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
@group(0) @binding(${S_BINDING}) var<storage, read> wscale: array<f32>;
fn wv(i: u32) -> f32 {
  let q = i32(w[i >> 3u] << (28u - ((i & 7u) << 2u))) >> 28u; // sign-extended nibble
  return f32(q) * wscale[i / ${GROUP}u];
}
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb): one word, one scale (i a multiple of 8, groups of ≥ 8).
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let q = w[i >> 3u];
  let lo = vec4<i32>(bitcast<i32>(q << 28u), bitcast<i32>(q << 24u), bitcast<i32>(q << 20u), bitcast<i32>(q << 16u)) >> vec4<u32>(28u);
  let hi = vec4<i32>(bitcast<i32>(q << 12u), bitcast<i32>(q << 8u), bitcast<i32>(q << 4u), bitcast<i32>(q)) >> vec4<u32>(28u);
  return (dot(vec4<f32>(lo), xa) + dot(vec4<f32>(hi), xb)) * wscale[i / ${GROUP}u];
}
