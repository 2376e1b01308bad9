// Fills a buffer with seeded pseudo-random words (benchmarks build real-size models on the GPU
// instead of uploading gigabytes): mode 0 raw bits (packed int4/int8 weights), mode 1 f32 uniform
// in [offset − scale, offset + scale] (f32 weights, quantisation scales, norms).
struct Params { n: u32, mode: u32, seed: u32, _p: u32, scale: f32, offset: f32, _a: f32, _b: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 256u;
  for (var i = gid.x; i < p.n; i += stride) {
    let r = pcg(i ^ pcg(p.seed));
    if (p.mode == 0u) {
      out[i] = r;
    } else {
      let u = f32(r >> 8u) / 16777216.0; // [0, 1)
      out[i] = bitcast<u32>(p.offset + p.scale * (2.0 * u - 1.0));
    }
  }
}
