// Backward of rotate_half RoPE (qkv_rope.wgsl; h = D/2, i < h): the rotation is orthogonal, so the
// gradient is the inverse rotation,
//   dx[i] = dy[i]·cos θ_i + dy[i+h]·sin θ_i,   dx[i+h] = dy[i+h]·cos θ_i − dy[i]·sin θ_i,
// at position start + t, with cos/sin from the forward's host tables [position, h]. One thread per
// (token, head, i). Rows are read from and written to strided views, so the gradient can land
// straight in its slice of the fused q/k/v projection's gradient: element (t, head, d) is at
// t·stride + offset + head·D + d on each side.
struct Params { tokens: u32, heads: u32, head_dim: u32, start: u32, in_stride: u32, in_offset: u32, out_stride: u32, out_offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> cos_t: array<f32>;
@group(0) @binding(4) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let half = p.head_dim / 2u;
  let idx = gid.y * nwg.x * 256u + gid.x;
  if (idx >= p.tokens * p.heads * half) { return; }
  let i = idx % half;
  let h = (idx / half) % p.heads;
  let t = idx / (half * p.heads);
  let src = t * p.in_stride + p.in_offset + h * p.head_dim + i;
  let dst = t * p.out_stride + p.out_offset + h * p.head_dim + i;
  let c = cos_t[(p.start + t) * half + i];
  let s = sin_t[(p.start + t) * half + i];
  let a = dy[src];
  let b = dy[src + half];
  dx[dst] = a * c + b * s;
  dx[dst + half] = b * c - a * s;
}

// The same strided views without the rotation: moves dv into its slice of d(qkv).
@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.y * nwg.x * 256u + gid.x;
  if (idx >= p.tokens * p.heads * p.head_dim) { return; }
  let i = idx % p.head_dim;
  let h = (idx / p.head_dim) % p.heads;
  let t = idx / (p.head_dim * p.heads);
  dx[t * p.out_stride + p.out_offset + h * p.head_dim + i] = dy[t * p.in_stride + p.in_offset + h * p.head_dim + i];
}
