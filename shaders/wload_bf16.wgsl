// Weights as the bf16 values of a GGUF tensor, two per u32 (element 2w in the low half of word w;
// src/engine/quant/ggml-pack.ts). A bf16 is the top half of an f32, so widening is a shift.
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
fn wv(i: u32) -> f32 {
  let v = w[i >> 1u];
  return bitcast<f32>(select(v & 0xffff0000u, v << 16u, (i & 1u) == 0u));
}
fn bf16x2(v: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xffff0000u)); }
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb); i a multiple of 8: four whole words.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let o = i >> 1u;
  return dot(vec4<f32>(bf16x2(w[o]), bf16x2(w[o + 1u])), xa) + dot(vec4<f32>(bf16x2(w[o + 2u]), bf16x2(w[o + 3u])), xb);
}
