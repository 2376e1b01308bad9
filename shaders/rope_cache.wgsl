// RoPE on this step's queries and keys and the KV-cache write, in one dispatch (decode pays per
// dispatch and per copy): thread ranges, in order,
//   q[T, H, D]       rotated in place (rotate_half, as rope.wgsl)
//   k[T, KVH, D]     rotated into k_cache rows start … start+T−1
//   v[T, KVH, D]     copied into v_cache rows start … start+T−1
struct Params { tokens: u32, heads: u32, kv_heads: u32, head_dim: u32, start: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(6) var<storage, read> cos_t: array<f32>;
@group(0) @binding(7) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let half = p.head_dim / 2u;
  let D = p.head_dim;
  let nq = p.tokens * p.heads * half;
  let nk = p.tokens * p.kv_heads * half;
  let nv = p.tokens * p.kv_heads * D;
  var idx = gid.y * nwg.x * 64u + gid.x;
  let cache0 = p.start * p.kv_heads * D; // first cache element written this step
  if (idx < nq) {
    let i = idx % half;
    let th = idx / half;
    let t = th / p.heads;
    let base = th * D;
    let c = cos_t[(p.start + t) * half + i];
    let s = sin_t[(p.start + t) * half + i];
    let a = q[base + i];
    let b = q[base + i + half];
    q[base + i] = a * c - b * s;
    q[base + i + half] = b * c + a * s;
    return;
  }
  idx -= nq;
  if (idx < nk) {
    let i = idx % half;
    let th = idx / half;
    let t = th / p.kv_heads;
    let base = th * D;
    let c = cos_t[(p.start + t) * half + i];
    let s = sin_t[(p.start + t) * half + i];
    let a = k[base + i];
    let b = k[base + i + half];
    k_cache[cache0 + base + i] = a * c - b * s;
    k_cache[cache0 + base + i + half] = b * c + a * s;
    return;
  }
  idx -= nk;
  if (idx < nv) { v_cache[cache0 + idx] = v[idx]; }
}
