// Weights as the f16 values of a GGUF tensor, two per u32 (element 2w in the low half of word w;
// src/engine/quant/ggml-pack.ts). Same interface as wload_f32/int8/int4: wv(i) is element i of the
// row-major weight matrix. unpack2x16float is core WGSL, so no shader-f16 is needed.
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
fn wv(i: u32) -> f32 { return unpack2x16float(w[i >> 1u])[i & 1u]; }
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb); i a multiple of 8: four whole words.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let o = i >> 1u;
  let a = vec4<f32>(unpack2x16float(w[o]), unpack2x16float(w[o + 1u]));
  let b = vec4<f32>(unpack2x16float(w[o + 2u]), unpack2x16float(w[o + 3u]));
  return dot(a, xa) + dot(b, xb);
}
