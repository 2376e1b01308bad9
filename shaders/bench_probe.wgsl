// Roofline probes measured in the same run as the model benchmarks:
//   read_bw   streams a buffer once with 16-byte loads (the read bandwidth decode can hope for)
//   fma_peak  independent f32 FMA chains in registers (the f32 compute ceiling for prefill)
struct Params { n4: u32, iters: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn read_bw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 256u;
  var acc = vec4<f32>(0.0);
  for (var i = gid.x; i < p.n4; i += stride) { acc += src[i]; }
  out[gid.x] = acc.x + acc.y + acc.z + acc.w;
}

@compute @workgroup_size(256)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>) {
  var s = f32(gid.x) * 1e-9;
  if (p.n4 == 0xffffffffu) { s += src[0].x; } // keeps binding 1 in the shared auto layout
  var a0 = vec4<f32>(s); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
  var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
  let m = vec4<f32>(0.9999);
  let c = vec4<f32>(1e-4);
  for (var i = 0u; i < p.iters; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  let t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  out[gid.x] = t.x + t.y + t.z + t.w;
}
