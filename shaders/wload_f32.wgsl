// Weights as plain f32: wv(i) is element i of the row-major weight matrix (see wload_int8/int4).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<f32>;
fn wv(i: u32) -> f32 { return w[i]; }
// Σ_{j<8} w[i + j] · x_j with x = (xa, xb); i a multiple of 8 (the vectorised matrix-vector kernels).
fn wdot8(i: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  return dot(vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]), xa) + dot(vec4<f32>(w[i + 4u], w[i + 5u], w[i + 6u], w[i + 7u]), xb);
}
