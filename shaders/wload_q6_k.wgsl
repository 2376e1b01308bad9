// Weights as GGUF Q6_K superblocks of 256 (ggml's block_q6_K: ql[128], qh[64], int8 scales[16],
// f16 d = 210 bytes, padded to 53 words; src/engine/quant/ggml-pack.ts). Element j: half n = j / 128,
// quarter t = (j % 128) / 32, l = j % 32; low 4 bits from ql[64n + 32·(t % 2) + l] (high nibble when
// t ≥ 2), high 2 bits from qh[32n + l] at bit 2t; y = d·scales[j / 16]·(q − 32).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
// d·scales[k] of the superblock at word b (the product gguf-blocks.ts rounds to f32 first).
fn q6k_scale(b: u32, k: u32) -> f32 {
  let s = i32(w[b + 48u + (k >> 2u)] << (24u - ((k & 3u) << 3u))) >> 24u; // sign-extended byte
  return unpack2x16float(w[b + 52u]).x * f32(s);
}
fn wv(i: u32) -> f32 {
  let b = (i >> 8u) * 53u;
  let j = i & 255u;
  let n = j >> 7u;
  let t = (j >> 5u) & 3u;
  let l = j & 31u;
  let lb = (n << 6u) + ((t & 1u) << 5u) + l;
  let hb = 128u + (n << 5u) + l;
  let lo = (w[b + (lb >> 2u)] >> (((lb & 3u) << 3u) + ((t >> 1u) << 2u))) & 15u;
  let hi = (w[b + (hb >> 2u)] >> (((hb & 3u) << 3u) + (t << 1u))) & 3u;
  return q6k_scale(b, j >> 4u) * f32(i32(lo | (hi << 4u)) - 32);
}
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb); i a multiple of 8: one scale, two words of ql, two of qh.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let b = (i >> 8u) * 53u;
  let j = i & 255u;
  let n = j >> 7u;
  let t = (j >> 5u) & 3u;
  let l = j & 31u;
  let lo = b + (((n << 6u) + ((t & 1u) << 5u) + l) >> 2u);
  let ho = b + ((128u + (n << 5u) + l) >> 2u);
  let bt = vec4<u32>(0u, 8u, 16u, 24u);
  let ls = bt + vec4<u32>((t >> 1u) << 2u);
  let hs = bt + vec4<u32>(t << 1u);
  let qa = vec4<i32>(((vec4<u32>(w[lo]) >> ls) & vec4<u32>(15u)) | (((vec4<u32>(w[ho]) >> hs) & vec4<u32>(3u)) << vec4<u32>(4u))) - vec4<i32>(32);
  let qc = vec4<i32>(((vec4<u32>(w[lo + 1u]) >> ls) & vec4<u32>(15u)) | (((vec4<u32>(w[ho + 1u]) >> hs) & vec4<u32>(3u)) << vec4<u32>(4u))) - vec4<i32>(32);
  return q6k_scale(b, j >> 4u) * (dot(vec4<f32>(qa), xa) + dot(vec4<f32>(qc), xb));
}
