// Weights as int8, 4 per u32 (byte j of word i holds element 4i + j), times one f32 scale per
// ${GROUP} consecutive elements of a row (src/engine/quant/pack.ts writes this layout).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
@group(0) @binding(${S_BINDING}) var<storage, read> wscale: array<f32>;
fn wv(i: u32) -> f32 {
  let q = i32(w[i >> 2u] << (24u - ((i & 3u) << 3u))) >> 24u; // sign-extended byte
  return f32(q) * wscale[i / ${GROUP}u];
}
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb); i a multiple of 8, so both words share one scale.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let a = w[i >> 2u];
  let b = w[(i >> 2u) + 1u];
  let qa = vec4<f32>(vec4<i32>(bitcast<i32>(a << 24u), bitcast<i32>(a << 16u), bitcast<i32>(a << 8u), bitcast<i32>(a)) >> vec4<u32>(24u));
  let qb = vec4<f32>(vec4<i32>(bitcast<i32>(b << 24u), bitcast<i32>(b << 16u), bitcast<i32>(b << 8u), bitcast<i32>(b)) >> vec4<u32>(24u));
  return (dot(qa, xa) + dot(qb, xb)) * wscale[i / ${GROUP}u];
}
