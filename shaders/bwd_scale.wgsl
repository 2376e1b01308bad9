// y[i] (+)= alpha · x[i]: a scaled copy for the backward (Granite's residual multiplier on the
// branch gradients, LoRA's α/r on the adapter's output gradient), without a clear-then-add pair.
struct Params { n: u32, alpha: f32, accumulate: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= p.n) { return; }
  var v = p.alpha * x[i];
  if (p.accumulate != 0u) { v += y[i]; }
  y[i] = v;
}
