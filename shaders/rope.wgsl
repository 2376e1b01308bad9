// Rotary position embedding, HF's rotate_half form, in place on x[T, heads, head_dim]:
//   out[i]       = x[i]·cos(θ_i) − x[i+h]·sin(θ_i)
//   out[i+h]     = x[i+h]·cos(θ_i) + x[i]·sin(θ_i),   h = head_dim/2, i < h
// cos/sin come from a host-computed table [position, h] (f32, as HF computes them), so this kernel
// does no trigonometry. Token t sits at position start + t.
struct Params { tokens: u32, heads: u32, head_dim: u32, start: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let half = p.head_dim / 2u;
  let idx = gid.y * nwg.x * 64u + gid.x; // one thread per (token, head, i < half)
  if (idx >= p.tokens * p.heads * half) { return; }
  let i = idx % half;
  let th = idx / half;
  let t = th / p.heads;
  let base = th * p.head_dim;
  let c = cos_t[(p.start + t) * half + i];
  let s = sin_t[(p.start + t) * half + i];
  let a = x[base + i];
  let b = x[base + i + half];
  x[base + i] = a * c - b * s;
  x[base + i + half] = b * c + a * s;
}
