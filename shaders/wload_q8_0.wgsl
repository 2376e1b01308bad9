// Weights as GGUF Q8_0 blocks of 32: y = q·d with d an f16 and q an int8 (ggml's block_q8_0),
// each block 9 words on the GPU — d in the low half of word 0, then the 32 quants as in the file
// (src/engine/quant/ggml-pack.ts). Same interface as wload_int8.wgsl.
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<u32>;
fn wv(i: u32) -> f32 {
  let b = (i >> 5u) * 9u;
  let j = i & 31u;
  let q = i32(w[b + 1u + (j >> 2u)] << (24u - ((j & 3u) << 3u))) >> 24u; // sign-extended byte
  return f32(q) * unpack2x16float(w[b]).x;
}
// Σ_{j<8} wv(i + j) · x_j with x = (xa, xb); i a multiple of 8, so both words lie in one block.
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let b = (i >> 5u) * 9u;
  let o = b + 1u + ((i & 31u) >> 2u);
  let a = w[o];
  let c = w[o + 1u];
  let qa = vec4<f32>(vec4<i32>(bitcast<i32>(a << 24u), bitcast<i32>(a << 16u), bitcast<i32>(a << 8u), bitcast<i32>(a)) >> vec4<u32>(24u));
  let qc = vec4<f32>(vec4<i32>(bitcast<i32>(c << 24u), bitcast<i32>(c << 16u), bitcast<i32>(c << 8u), bitcast<i32>(c)) >> vec4<u32>(24u));
  return (dot(qa, xa) + dot(qc, xb)) * unpack2x16float(w[b]).x;
}
