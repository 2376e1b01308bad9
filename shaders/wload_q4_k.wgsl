// Weights as GGUF Q4_K superblocks of 256 (ggml's block_q4_K, 144 bytes = 36 words, kept as in the
// file; src/engine/quant/ggml-pack.ts): word 0 = d | dmin << 16 (f16), words 1–3 = 12 bytes of
// 6-bit scales and mins for the 8 sub-blocks of 32, words 4–35 = 128 bytes of nibbles. Element j of
// a superblock: sub-block s = j / 32 with (sc, m) = get_scale_min_k4(s), nibble = byte
// 32·(j / 64) + j % 32, low half when s is even; y = d·sc·q − dmin·m (as gguf-blocks.ts computes it).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
// Byte k of the 12 scale bytes of the superblock at word b.
fn q4k_sbyte(b: u32, k: u32) -> u32 { return (w[b + 1u + (k >> 2u)] >> ((k & 3u) << 3u)) & 0xffu; }
// (d·sc, dmin·m) of sub-block s (ggml's get_scale_min_k4, then the products it dequantises with).
fn q4k_scale(b: u32, s: u32) -> vec2<f32> {
  var sc: u32;
  var m: u32;
  if (s < 4u) {
    sc = q4k_sbyte(b, s) & 63u;
    m = q4k_sbyte(b, s + 4u) & 63u;
  } else {
    let hi = q4k_sbyte(b, s + 4u);
    sc = (hi & 15u) | ((q4k_sbyte(b, s - 4u) >> 6u) << 4u);
    m = (hi >> 4u) | ((q4k_sbyte(b, s) >> 6u) << 4u);
  }
  return unpack2x16float(w[b]) * vec2<f32>(f32(sc), f32(m));
}
fn wv(i: u32) -> f32 {
  let b = (i >> 8u) * 36u;
  let j = i & 255u;
  let s = j >> 5u;
  let bt = ((j >> 6u) << 5u) + (j & 31u);
  let q = (w[b + 4u + (bt >> 2u)] >> (((bt & 3u) << 3u) + ((s & 1u) << 2u))) & 15u;
  let dm = q4k_scale(b, s);
  return dm.x * f32(q) - dm.y;
}
// Σ_{j<8} wv(i + j) · x_j = d·sc·Σ q_j x_j − dmin·m·Σ x_j; i a multiple of 8: one sub-block, two words.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let b = (i >> 8u) * 36u;
  let j = i & 255u;
  let s = j >> 5u;
  let o = b + 4u + ((((j >> 6u) << 5u) + (j & 31u)) >> 2u);
  let sh = vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>((s & 1u) << 2u);
  let qa = vec4<f32>((vec4<u32>(w[o]) >> sh) & vec4<u32>(15u));
  let qc = vec4<f32>((vec4<u32>(w[o + 1u]) >> sh) & vec4<u32>(15u));
  let dm = q4k_scale(b, s);
  return dm.x * (dot(qa, xa) + dot(qc, xb)) - dm.y * (dot(xa, vec4<f32>(1.0)) + dot(xb, vec4<f32>(1.0)));
}
