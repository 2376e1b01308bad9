// Weights as plain f32: wv(i) is element i of the row-major weight matrix (see wload_int8/int4).
@group(0) @binding(${W_BINDING}) var<storage, read> w: array<f32>;
fn wv(i: u32) -> f32 { return w[i]; }
