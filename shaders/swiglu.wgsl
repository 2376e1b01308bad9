// out[r, i] = silu(gu[r, i]) · gu[r, I + i] over rows of [gate | up] (gate half first), SiLU(x) = x·σ(x).
struct Params { rows: u32, inter: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.y * nwg.x * 256u + gid.x;
  if (idx >= p.rows * p.inter) { return; }
  let r = idx / p.inter;
  let i = idx % p.inter;
  let g = gu[r * 2u * p.inter + i];
  let u = gu[r * 2u * p.inter + p.inter + i];
  out[idx] = g / (1.0 + exp(-g)) * u;
}
