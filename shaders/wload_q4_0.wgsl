// Weights as GGUF Q4_0 blocks of 32: y = (q − 8)·d with d an f16 and q a nibble; byte j of the
// 16 holds element j (low nibble) and element j + 16 (high nibble) (ggml's block_q4_0). Each block
// is 5 words on the GPU: d in the low half of word 0, then the 16 bytes as in the file
// (src/engine/quant/ggml-pack.ts). Same interface as wload_int4.wgsl.
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
fn wv(i: u32) -> f32 {
  let b = (i >> 5u) * 5u;
  let j = i & 31u;
  let bt = j & 15u;
  let q = (w[b + 1u + (bt >> 2u)] >> (((bt & 3u) << 3u) + ((j >> 4u) << 2u))) & 15u;
  return f32(i32(q) - 8) * unpack2x16float(w[b]).x;
}
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb); i a multiple of 8: elements j … j+7 of a block are
// bytes (j mod 16) … +7, two whole words, all low nibbles (j < 16) or all high ones.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let b = (i >> 5u) * 5u;
  let j = i & 31u;
  let o = b + 1u + ((j & 15u) >> 2u);
  let sh = vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>((j >> 4u) << 2u);
  let qa = vec4<f32>(vec4<i32>((vec4<u32>(w[o]) >> sh) & vec4<u32>(15u)) - vec4<i32>(8));
  let qc = vec4<f32>(vec4<i32>((vec4<u32>(w[o + 1u]) >> sh) & vec4<u32>(15u)) - vec4<i32>(8));
  return (dot(qa, xa) + dot(qc, xb)) * unpack2x16float(w[b]).x;
}
