// Backward of out[r, i] = silu(g)·u with g = gu[r, i], u = gu[r, I + i] (swiglu.wgsl, gate half
// first), f32: d(gu)[r, i] = dout·u·σ(g)·(1 + g·(1 − σ(g))), d(gu)[r, I + i] = dout·silu(g).
struct Params { rows: u32, inter: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgu: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.y * nwg.x * 256u + gid.x;
  if (idx >= p.rows * p.inter) { return; }
  let r = idx / p.inter;
  let i = idx % p.inter;
  let gi = r * 2u * p.inter + i;
  let g = gu[gi];
  let u = gu[gi + p.inter];
  let d = dout[idx];
  let sg = 1.0 / (1.0 + exp(-g));
  dgu[gi] = d * u * sg * (1.0 + g * (1.0 - sg));
  dgu[gi + p.inter] = d * g * sg;
}
