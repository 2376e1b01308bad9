// Workgroup-wide sum and max over 256 threads for the backward kernels (their own copy of the
// forward's reduce.wgsl, so the two can change apart). Call from uniform control flow.
var<workgroup> bwd_red: array<f32, 256>;

fn bwd_sum(v: f32, lid: u32) -> f32 {
  bwd_red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { bwd_red[lid] += bwd_red[lid + s]; }
    workgroupBarrier();
  }
  let r = bwd_red[0];
  workgroupBarrier();
  return r;
}

fn bwd_max(v: f32, lid: u32) -> f32 {
  bwd_red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { bwd_red[lid] = max(bwd_red[lid], bwd_red[lid + s]); }
    workgroupBarrier();
  }
  let r = bwd_red[0];
  workgroupBarrier();
  return r;
}

// Index of a workgroup in a grid folded over x and y (grid1d in buffers.ts).
fn bwd_group(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }
